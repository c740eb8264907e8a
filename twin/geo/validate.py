"""Geometry checking: repair what is invalid, report what is empty or outside.

Nothing disappears silently: every repair, every empty geometry dropped and
every feature outside the city extent is counted and listed by feature id in a
:class:`GeometryReport` that the layer keeps and ``twin city info`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely


@dataclass
class GeometryReport:
    """What the check found in one layer."""

    features_in: int = 0
    repaired: int = 0
    empty_dropped: int = 0
    outside_extent: int = 0
    repaired_ids: list[str] = field(default_factory=list)
    empty_ids: list[str] = field(default_factory=list)
    outside_ids: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.repaired or self.empty_dropped or self.outside_extent)

    def summary(self) -> str:
        if self.clean:
            return "all geometries valid"
        parts = []
        if self.repaired:
            parts.append(f"{self.repaired} invalid repaired")
        if self.empty_dropped:
            parts.append(f"{self.empty_dropped} empty dropped")
        if self.outside_extent:
            parts.append(f"{self.outside_extent} outside the city extent")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "features_in": self.features_in, "repaired": self.repaired,
            "empty_dropped": self.empty_dropped, "outside_extent": self.outside_extent,
            "repaired_ids": self.repaired_ids[:50], "empty_ids": self.empty_ids[:50],
            "outside_ids": self.outside_ids[:50],
        }


def _feature_ids(frame: gpd.GeoDataFrame, mask: np.ndarray) -> list[str]:
    if "osm_id" in frame.columns and "osm_type" in frame.columns:
        sub = frame.loc[mask, ["osm_type", "osm_id"]]
        return [f"{t}/{i}" for t, i in zip(sub["osm_type"], sub["osm_id"])]
    return [str(i) for i in frame.index[mask]]


def check_geometries(frame: gpd.GeoDataFrame, *, extent: shapely.Geometry | None = None) -> tuple[gpd.GeoDataFrame, GeometryReport]:
    """Repair invalid geometries (keeping their type family), drop empty ones, flag ones outside ``extent``."""
    report = GeometryReport(features_in=len(frame))
    geoms = frame.geometry.values
    empty = np.asarray(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if empty.any():
        report.empty_dropped = int(empty.sum())
        report.empty_ids = _feature_ids(frame, empty)
        frame = frame.loc[~empty].copy()
        geoms = frame.geometry.values
    invalid = ~np.asarray(shapely.is_valid(geoms))
    if invalid.any():
        fixed = shapely.make_valid(np.asarray(geoms[invalid]), method="structure", keep_collapsed=False)
        report.repaired = int(invalid.sum())
        report.repaired_ids = _feature_ids(frame, invalid)
        frame = frame.copy()
        column = frame.geometry.name
        values = np.asarray(frame.geometry.values, dtype=object)
        values[invalid] = fixed
        frame[column] = gpd.GeoSeries(values, index=frame.index, crs=frame.crs)
        now_empty = np.asarray(shapely.is_empty(frame.geometry.values))
        if now_empty.any():
            report.empty_dropped += int(now_empty.sum())
            report.empty_ids += _feature_ids(frame, now_empty)
            frame = frame.loc[~now_empty].copy()
    if extent is not None and len(frame):
        outside = ~np.asarray(shapely.intersects(frame.geometry.values, extent))
        if outside.any():
            report.outside_extent = int(outside.sum())
            report.outside_ids = _feature_ids(frame, outside)
    return frame, report
