"""Numba's on-disk cache for the flood kernels, kept fresh when any module of the package changes.

Numba checks a cached function against the file it was written in, and only
that file: the solver's step in ``hydraulics.py`` inlines the soil and rain
code of ``sources.py``, so after an update of ``sources.py`` alone the cache
would keep running the old soil code.  :func:`stamp_with_package` makes the
freshness stamp of every cached function of this package include a digest
of all its modules, so that any change recompiles.  It must run before the
modules with cached functions are imported (``models/flood/__init__.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def package_digest(folder: Path = PACKAGE_DIR) -> str:
    """SHA-256 of the package's Python modules (names and contents, in name order)."""
    digest = hashlib.sha256()
    for module in sorted(folder.glob("*.py")):
        digest.update(module.name.encode())
        digest.update(module.read_bytes())
    return digest.hexdigest()


def stamp_with_package() -> bool:
    """Put locators whose stamps carry :func:`package_digest` in front of numba's own; True if installed."""
    try:
        from numba.core import caching
    except ImportError:  # the project is not installed yet (bootstrap)
        return False
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # renamed in numba 0.61
    if impl is None:
        return False
    locators = impl._locator_classes
    if any(getattr(cls, "twin_package_stamped", False) for cls in locators):
        return True
    digest = package_digest()
    stamped = []
    for base in locators[:3]:  # user-provided cache folder, in-tree __pycache__, user-wide folder
        stamped.append(type(f"PackageStamped{base.__name__.lstrip('_')}", (base,), {
            "twin_package_stamped": True,
            "get_source_stamp": lambda self, _base=base: (_base.get_source_stamp(self), digest),
            "from_function": classmethod(
                lambda cls, py_func, py_file, _base=base: _base.from_function.__func__(cls, py_func, py_file)
                if Path(py_file).resolve().parent == PACKAGE_DIR else None),
        }))
    locators[:0] = stamped
    return True
