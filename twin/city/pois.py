"""Points of interest by kind: hospitals, fire stations, police, schools,
stadiums, parking (with capacity where tagged) and shelters.

OSM features get their kind from their tags (first rule that matches); a plain
vector layer names the kind of all its features in the manifest
(``poi_kind``).  Polygons become their representative point.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

#: (OSM key, value, kind) in order of precedence.
OSM_POI_RULES: tuple[tuple[str, str, str], ...] = (
    ("amenity", "hospital", "hospital"),
    ("healthcare", "hospital", "hospital"),
    ("amenity", "fire_station", "fire_station"),
    ("amenity", "police", "police"),
    ("leisure", "stadium", "stadium"),
    ("building", "stadium", "stadium"),
    ("emergency", "assembly_point", "shelter"),
    ("amenity", "shelter", "shelter"),
    ("social_facility", "shelter", "shelter"),
    ("amenity", "school", "school"),
    ("amenity", "college", "school"),
    ("amenity", "university", "school"),
    ("amenity", "kindergarten", "school"),
    ("amenity", "parking", "parking"),
)
KINDS = ("hospital", "fire_station", "police", "school", "stadium", "parking", "shelter", "other")


def parse_capacity(value: object) -> float:
    """Capacity from a tag or attribute ('350', '1 200', '~50'); NaN when absent or unreadable."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    digits = "".join(ch for ch in str(value).split(";")[0] if ch.isdigit() or ch == ".")
    try:
        out = float(digits)
    except ValueError:
        return np.nan
    return out if out >= 0 else np.nan


@dataclass
class PointsOfInterest:
    """One row per POI: ``kind``, ``name``, ``capacity`` (NaN unknown), ``shelter``,
    ``layer``, ``feature_id``, point geometry in the project CRS."""

    frame: gpd.GeoDataFrame

    def __len__(self) -> int:
        return len(self.frame)

    def of_kind(self, kind: str) -> gpd.GeoDataFrame:
        return self.frame.loc[self.frame["kind"] == kind]

    def counts(self) -> dict[str, int]:
        counts = self.frame["kind"].value_counts()
        return {k: int(counts[k]) for k in KINDS if k in counts}

    @property
    def xy(self) -> np.ndarray:
        return shapely.get_coordinates(self.frame.geometry.values)


def kinds_from_osm_tags(frame: pd.DataFrame) -> np.ndarray:
    """Kind of each OSM feature from its tags; "other" when no rule matches."""
    kind = np.full(len(frame), "", dtype=object)
    for key, value, name in OSM_POI_RULES:
        if key not in frame.columns:
            continue
        hit = (frame[key].astype(object) == value).to_numpy() & (kind == "")
        kind[hit] = name
    kind[kind == ""] = "other"
    return kind


def build_pois(layers: list[tuple[str, gpd.GeoDataFrame, str | None, str | None, bool]], crs) -> PointsOfInterest:
    """Merge POI layers: (layer name, features, poi_kind or None for OSM tags,
    capacity field or None, whether the layer's features are shelters)."""
    parts = []
    for layer_name, frame, poi_kind, capacity_field, shelters in layers:
        if frame.empty:
            continue
        kind = np.full(len(frame), poi_kind, dtype=object) if poi_kind else kinds_from_osm_tags(frame)
        cap_column = capacity_field or ("capacity" if "capacity" in frame.columns else None)
        capacity = (np.array([parse_capacity(v) for v in frame[cap_column]], dtype=float)
                    if cap_column and cap_column in frame.columns else np.full(len(frame), np.nan))
        if "feature_id" in frame.columns:
            fid = frame["feature_id"].astype(str).to_numpy()
        elif "osm_id" in frame.columns and "osm_type" in frame.columns:
            fid = (frame["osm_type"].astype(str) + "/" + frame["osm_id"].astype(str)).to_numpy()
        else:
            fid = np.array([f"{layer_name}/{i}" for i in frame.index], dtype=object)
        names = frame["name"].to_numpy(dtype=object) if "name" in frame.columns else np.full(len(frame), None)
        points = shapely.point_on_surface(frame.geometry.values)
        parts.append(gpd.GeoDataFrame({
            "kind": kind, "name": names, "capacity": capacity,
            "shelter": np.full(len(frame), shelters) | (kind == "shelter"),
            "layer": layer_name, "feature_id": fid,
        }, geometry=points, crs=crs))
    if not parts:
        empty = gpd.GeoDataFrame({"kind": [], "name": [], "capacity": [], "shelter": [], "layer": [], "feature_id": []},
                                 geometry=gpd.GeoSeries([], crs=crs), crs=crs)
        return PointsOfInterest(empty)
    merged = pd.concat(parts, ignore_index=True)
    return PointsOfInterest(gpd.GeoDataFrame(merged, geometry="geometry", crs=crs))
