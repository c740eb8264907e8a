"""Shared fixtures: the sample cities, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GIS_DATA = ROOT / "gis_data"


@pytest.fixture(scope="session")
def gis_data() -> Path:
    return GIS_DATA
