"""Twin: an urban digital twin for rehearsing and comparing emergency plans.

This package's top level stays free of heavy imports so that the bootstrap
(``twin.bootstrap``) can run on a bare Python before any dependency exists.
"""

__version__ = "0.1.0"
