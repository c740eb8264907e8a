"""The flood kernels' compiled cache goes stale with any module of the package, not only the kernel's own file."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.flood import hydraulics, sources
from models.flood.jit_cache import PACKAGE_DIR, package_digest


def test_kernels_cache_stamps_carry_the_package_digest():
    """The step inlines soil code from sources.py: its cache entry must depend on that file too."""
    digest = package_digest()
    for kernel in (hydraulics._continuity_block, sources._soil_step):
        stamp = kernel._cache._impl.locator.get_source_stamp()
        assert stamp[1] == digest, kernel


def test_package_digest_follows_every_module(tmp_path: Path):
    copy = tmp_path / "flood"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    before = package_digest(copy)
    assert package_digest(copy) == before  # the same sources, the same digest
    text = (copy / "sources.py").read_text()
    (copy / "sources.py").write_text(text.replace("_PONDED_Z_MAX, _PONDED_W_MAX = ", "_PONDED_Z_MAX, _PONDED_W_MAX = 0.5 * "))
    assert package_digest(copy) != before
    (copy / "sources.py").write_text(text)
    assert package_digest(copy) == before
