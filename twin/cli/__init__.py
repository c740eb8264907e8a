"""Command-line interface (``twin``)."""
