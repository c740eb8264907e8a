"""The project CRS: one metric coordinate system every layer is reprojected to.

The default is the local UTM zone of the data (WGS 84 / UTM, EPSG:326xx north,
327xx south); any CRS that pyproj knows can be named instead, for example a
CGCS2000 3-degree Gauss-Kruger zone (EPSG:4547 is CM 114E) or the British
National Grid (EPSG:27700).
"""

from __future__ import annotations

from pyproj import CRS
from pyproj.exceptions import CRSError

WGS84 = CRS.from_epsg(4326)


def utm_crs_for(lon: float, lat: float) -> CRS:
    """WGS 84 / UTM zone containing (lon, lat), with Norway and Svalbard exceptions."""
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise ValueError(f"({lon}, {lat}) is outside the UTM range")
    zone = int((lon + 180.0) // 6.0) + 1
    zone = min(zone, 60)
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    if 72.0 <= lat < 84.0 and 0.0 <= lon < 42.0:
        zone = 31 if lon < 9.0 else 33 if lon < 21.0 else 35 if lon < 33.0 else 37
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def parse_crs(spec: str) -> CRS | None:
    """The CRS a manifest names; None for "utm" (decided later from the data).

    Raises ValueError with a readable message for anything pyproj does not know
    or that is not metric (a project CRS must be in metres).
    """
    text = spec.strip()
    if text.lower() in ("utm", "auto", "local-utm"):
        return None
    try:
        crs = CRS.from_user_input(text)
    except CRSError:
        raise ValueError(f"unknown CRS {spec!r}; use \"utm\" or a code such as \"EPSG:4547\"") from None
    if not crs.is_projected:
        raise ValueError(f"{spec!r} is not a projected CRS; the project CRS must be metric (e.g. \"utm\" or \"EPSG:32632\")")
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if unit not in ("metre", "meter"):
        raise ValueError(f"{spec!r} has axis unit {unit!r}; the project CRS must be in metres")
    return crs


def crs_label(crs: CRS) -> str:
    """Short label: 'EPSG:32632 (WGS 84 / UTM zone 32N)'."""
    epsg = crs.to_epsg()
    code = f"EPSG:{epsg}" if epsg else "custom CRS"
    return f"{code} ({crs.name})"
