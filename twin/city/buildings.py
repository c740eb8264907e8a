"""Buildings for the models: footprint, height with its source, base elevation,
floor area and an estimate of the residents.

Heights come from the best evidence available, and each building records which
one was used (``height_source``):

1. ``height`` tag (metres; feet when written ``40'`` or ``40 ft``),
2. ``building:levels`` x 3 m (plus ``roof:levels`` x 1.5 m),
3. a height already in the source (``height_m`` with its ``height_source``,
   e.g. buildings derived from a surface model),
4. a default number of levels for the building type (``data/building_types.csv``).

Residents are spread over residential floor area (dasymetric): each building
type has a residential weight; when the city gives a population it is shared
out in proportion to weighted floor area, otherwise floor area is divided by
the floor area per resident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from twin.geo.raster import Grid

STOREY_HEIGHT_M = 3.0
ROOF_STOREY_HEIGHT_M = 1.5
FALLBACK_TYPE = "yes"

HEIGHT_SOURCES = ("height_tag", "levels_tag", "source_data", "type_default")

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def load_building_types() -> pd.DataFrame:
    """Default levels and residential weight per OSM ``building`` value."""
    with resources.files("twin.city").joinpath("data/building_types.csv").open("r", encoding="utf-8") as fh:
        table = pd.read_csv(fh, dtype={"building": str})
    return table.set_index("building")


def parse_height_m(text: object) -> float:
    """Metres from an OSM height value: '12', '12 m', '12.5m', "40'", '40 ft', '12;15' (the larger)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return np.nan
    s = str(text).strip().lower()
    if not s:
        return np.nan
    values = []
    for part in s.split(";"):
        feet = ("'" in part) or ("ft" in part) or ("feet" in part)
        inches = re.search(r"(\d+)\s*\"", part)
        match = _NUMBER.search(part)
        if not match:
            continue
        value = float(match.group().replace(",", "."))
        if feet:
            value *= 0.3048
            if inches and "'" in part:
                value += float(inches.group(1)) * 0.0254
        values.append(value)
    if not values:
        return np.nan
    value = max(values)
    return value if 0.0 < value < 1000.0 else np.nan


def parse_levels(text: object) -> float:
    """Number of storeys from '3', '3.5', '2;4' (the larger); NaN when unusable."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return np.nan
    values = [float(m.group().replace(",", ".")) for m in _NUMBER.finditer(str(text))]
    values = [v for v in values if 0 <= v < 300]
    return max(values) if values else np.nan


@dataclass
class Buildings:
    """Building footprints (a GeoDataFrame in the project CRS) with derived columns.

    Columns: ``building`` (type), ``name``, ``height_m``, ``height_source``,
    ``levels``, ``base_m`` (ground elevation, NaN on flat terrain),
    ``footprint_m2``, ``floor_area_m2``, ``residents``, ``feature_id``.
    """

    frame: gpd.GeoDataFrame
    residents_method: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def height_m(self) -> np.ndarray:
        return self.frame["height_m"].to_numpy(np.float32)

    @property
    def centroid_xy(self) -> np.ndarray:
        pts = shapely.centroid(self.frame.geometry.values)
        return shapely.get_coordinates(pts)

    def height_source_counts(self) -> dict[str, int]:
        counts = self.frame["height_source"].value_counts()
        return {k: int(counts.get(k, 0)) for k in HEIGHT_SOURCES}

    def find(self, **where: object) -> gpd.GeoDataFrame:
        """Rows whose columns equal the given values, e.g. ``find(name="Tour Odéon")``."""
        mask = np.ones(len(self.frame), dtype=bool)
        for column, value in where.items():
            mask &= (self.frame[column] == value).to_numpy()
        return self.frame.loc[mask]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def build_buildings(
    raw: gpd.GeoDataFrame,
    *,
    dem: Grid | None = None,
    population: int | None = None,
    floor_area_per_resident_m2: float = 40.0,
) -> Buildings:
    """Derive heights, base elevations, floor areas and residents from footprints.

    ``raw`` is in the project CRS and holds polygons; point or line features
    (a building mapped as a node) are left out and counted in ``notes``.
    """
    notes: list[str] = []
    polygonal = np.isin(shapely.get_type_id(raw.geometry.values), (3, 6))
    if (~polygonal).any():
        notes.append(f"{int((~polygonal).sum())} building features are not polygons (nodes or lines) and have no footprint; left out")
    frame = raw.loc[polygonal].copy()
    types = load_building_types()
    btype = _column(frame, "building").fillna(FALLBACK_TYPE).astype(str).str.strip().str.lower()
    btype = btype.where(btype.isin(types.index), FALLBACK_TYPE)

    tag_height = np.array([parse_height_m(v) for v in _column(frame, "height")], dtype=float)
    tag_levels = np.array([parse_levels(v) for v in _column(frame, "building:levels")], dtype=float)
    roof_levels = np.array([parse_levels(v) for v in _column(frame, "roof:levels")], dtype=float)
    source_height = pd.to_numeric(_column(frame, "height_m"), errors="coerce").to_numpy(float)
    default_levels = types.loc[btype.to_numpy(), "default_levels"].to_numpy(float)

    height = np.full(len(frame), np.nan)
    source = np.full(len(frame), "type_default", dtype=object)
    use = ~np.isnan(tag_height)
    height[use], source[use] = tag_height[use], "height_tag"
    from_levels = np.isnan(height) & ~np.isnan(tag_levels) & (tag_levels > 0)
    height[from_levels] = tag_levels[from_levels] * STOREY_HEIGHT_M + np.nan_to_num(roof_levels[from_levels]) * ROOF_STOREY_HEIGHT_M
    source[from_levels] = "levels_tag"
    from_source = np.isnan(height) & ~np.isnan(source_height) & (source_height > 0)
    height[from_source], source[from_source] = source_height[from_source], "source_data"
    rest = np.isnan(height)
    height[rest] = default_levels[rest] * STOREY_HEIGHT_M

    levels = np.where(~np.isnan(tag_levels) & (tag_levels > 0), tag_levels, np.maximum(1.0, np.round(height / STOREY_HEIGHT_M)))
    footprint = shapely.area(frame.geometry.values)
    floor_area = footprint * levels

    weight = types.loc[btype.to_numpy(), "residential_weight"].to_numpy(float)
    weighted_floor = weight * floor_area
    if population is not None and weighted_floor.sum() > 0:
        residents = population * weighted_floor / weighted_floor.sum()
        method = f"city population {population} shared by residential floor area"
    else:
        residents = weighted_floor / floor_area_per_resident_m2
        method = f"residential floor area / {floor_area_per_resident_m2:g} m2 per resident"

    if "ground_m" in frame.columns:
        base = pd.to_numeric(frame["ground_m"], errors="coerce").to_numpy(float)
    elif dem is not None:
        base = _base_elevation(frame.geometry.values, dem)
    else:
        base = np.full(len(frame), np.nan)

    if "feature_id" not in frame.columns:
        if "osm_type" in frame.columns and "osm_id" in frame.columns:
            frame["feature_id"] = frame["osm_type"].astype(str) + "/" + frame["osm_id"].astype(str)
        else:
            frame["feature_id"] = frame.index.astype(str)
    frame["building"] = btype.to_numpy()
    frame["height_m"] = height.astype(np.float32)
    frame["height_source"] = source
    frame["levels"] = levels.astype(np.float32)
    frame["base_m"] = base.astype(np.float32)
    frame["footprint_m2"] = footprint
    frame["floor_area_m2"] = floor_area
    frame["residents"] = residents
    frame = frame.reset_index(drop=True)
    return Buildings(frame=frame, residents_method=method, notes=notes)


def _base_elevation(geoms: np.ndarray, dem: Grid) -> np.ndarray:
    """Lowest terrain just outside each footprint: robust on a surface model
    (where the roof would be sampled inside) and on a bare-earth DEM alike."""
    step = max(dem.cell_size)
    rings = shapely.exterior(shapely.buffer(shapely.get_geometry(geoms, 0), step, quad_segs=2))
    coords, index = shapely.get_coordinates(rings, return_index=True)
    z = dem.sample(coords[:, 0], coords[:, 1]).astype(float)
    out = np.full(len(geoms), np.inf)
    np.fmin.at(out, index, np.where(np.isnan(z), np.inf, z))
    out[np.isinf(out)] = np.nan
    return out
