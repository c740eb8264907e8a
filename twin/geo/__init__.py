"""The one map: readers, CRS handling, layers, styles and land classes (no Qt)."""
