"""The one map: every layer of a city, read once, checked and reprojected to the
project CRS, in an ordered layer tree.

OSM layers that share a file are read in one pass; vector layers through GDAL;
rasters through rasterio.  Each vector layer's geometry report (repairs, empty,
outside the boundary) is kept in the layer's metadata.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from twin.errors import InputError, Problem, input_error
from twin.geo.crs import WGS84, crs_label, parse_crs, utm_crs_for
from twin.geo.layers import Layer, LayerTree
from twin.geo.manifest import CityManifest, LayerSpec, read_manifest
from twin.geo.raster import Grid, read_grid
from twin.geo.role_styles import default_style
from twin.geo.style import parse_style
from twin.geo.validate import GeometryReport, check_geometries
from twin.geo.vector import read_vector
from twin.progress import Feedback

DEFAULT_GROUPS = {
    "boundary": "Boundaries", "roads": "Transport", "buildings": "Buildings", "landuse": "Land",
    "natural": "Land", "landcover": "Land", "water": "Water", "inflows": "Water", "rain": "Hazard",
    "rain_zones": "Hazard", "pois": "Points of interest", "shelters": "Points of interest",
    "dem": "Terrain", "other": "Other",
}
#: Draw order of roles, top first (points over lines over polygons over rasters).
ROLE_ORDER = ("pois", "shelters", "inflows", "boundary", "roads", "buildings", "water", "natural",
              "landuse", "rain", "rain_zones", "landcover", "dem", "other")


@dataclass
class OneMap:
    """A city's layers in one CRS: the tree (what is shown) and the data by layer name."""

    manifest: CityManifest
    crs: CRS
    tree: LayerTree
    data: dict[str, gpd.GeoDataFrame | Grid | pd.DataFrame]
    reports: dict[str, GeometryReport] = field(default_factory=dict)
    boundary: shapely.Geometry | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.city.name

    @property
    def attribution(self) -> list[str]:
        return list(self.manifest.city.attribution)

    def layer_data(self, name: str):
        return self.data[name]

    def data_for_role(self, role: str) -> list[tuple[LayerSpec, object]]:
        return [(spec, self.data[spec.name]) for spec in self.manifest.layers_with_role(role) if spec.name in self.data]

    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the boundary, or of all data when there is none."""
        if self.boundary is not None:
            return tuple(shapely.bounds(self.boundary))  # type: ignore[return-value]
        boxes = []
        for value in self.data.values():
            if isinstance(value, gpd.GeoDataFrame) and len(value):
                boxes.append(value.total_bounds)
            elif isinstance(value, Grid):
                boxes.append(np.array(value.bounds))
        arr = np.array(boxes)
        return (arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max())


def _lonlat_centre(manifest: CityManifest) -> tuple[float, float]:
    """Centre of the data in lon/lat, to choose the local UTM zone."""
    from twin.geo.osm import osm_header

    for spec in manifest.layers:
        path = manifest.source_path(spec)
        if spec.role == "boundary" and not spec.is_osm:
            frame = read_vector(path, layer=spec.layer)
            minx, miny, maxx, maxy = frame.to_crs(WGS84).total_bounds
            return (minx + maxx) / 2, (miny + maxy) / 2
    for spec in manifest.layers:
        path = manifest.source_path(spec)
        if spec.is_osm:
            box = osm_header(path).get("bbox_lonlat")
            if box:
                return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        elif spec.kind == "raster":
            import rasterio
            from rasterio.warp import transform_bounds

            with rasterio.open(path) as src:
                minx, miny, maxx, maxy = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
            return (minx + maxx) / 2, (miny + maxy) / 2
        elif spec.kind == "vector":
            frame = read_vector(path, layer=spec.layer)
            minx, miny, maxx, maxy = frame.to_crs(WGS84).total_bounds
            return (minx + maxx) / 2, (miny + maxy) / 2
    raise input_error(manifest.path, "layers", "the city has no layers to place it; add at least one")


def project_crs(manifest: CityManifest) -> CRS:
    """The CRS the manifest names, or the local UTM zone of the data for "utm"."""
    crs = parse_crs(manifest.city.crs)
    if crs is None:
        lon, lat = _lonlat_centre(manifest)
        crs = utm_crs_for(lon, lat)
    return crs


def read_rain_table(path: Path) -> pd.DataFrame:
    """A rain series: ``time_s`` then one intensity column (mm/h) or one per zone."""
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise input_error(path, "", f"not a readable CSV table ({exc})") from None
    problems = []
    if "time_s" not in table.columns:
        problems.append(Problem(str(path), "time_s", "the first column must be time_s (seconds from the start)"))
    else:
        t = pd.to_numeric(table["time_s"], errors="coerce")
        if t.isna().any():
            problems.append(Problem(str(path), f"line {int(t.isna().to_numpy().argmax()) + 2}", "time_s is not a number"))
        elif (np.diff(t.to_numpy()) <= 0).any():
            bad = int(np.argmax(np.diff(t.to_numpy()) <= 0)) + 3
            problems.append(Problem(str(path), f"line {bad}", "times must increase strictly"))
    values = table.drop(columns=[c for c in ("time_s",) if c in table.columns])
    if values.shape[1] == 0:
        problems.append(Problem(str(path), "columns", "no intensity column after time_s"))
    numeric = values.apply(pd.to_numeric, errors="coerce")
    if numeric.isna().any().any():
        row, col = np.argwhere(numeric.isna().to_numpy())[0]
        problems.append(Problem(str(path), f"line {row + 2}, column {values.columns[col]}", "not a number"))
    elif (numeric < 0).any().any():
        row, col = np.argwhere((numeric < 0).to_numpy())[0]
        problems.append(Problem(str(path), f"line {row + 2}, column {values.columns[col]}", "rain intensity must not be negative"))
    if problems:
        raise InputError(problems)
    return table


def load_one_map(source: str | Path | CityManifest, *, feedback: Feedback | None = None,
                 vector_data: dict[str, gpd.GeoDataFrame] | None = None, crs: CRS | None = None) -> OneMap:
    """Read every layer of a city into one map.

    ``vector_data`` supplies already-checked vector layers (from the City cache)
    so that they are not read again; ``crs`` the project CRS already decided.
    """
    feedback = feedback or Feedback()
    manifest = source if isinstance(source, CityManifest) else read_manifest(source)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    crs = crs or project_crs(manifest)
    vector_data = dict(vector_data or {})
    data: dict[str, object] = {}
    reports: dict[str, GeometryReport] = {}

    feedback.progress(2, "reading OSM layers")
    osm_groups: dict[Path, list[LayerSpec]] = defaultdict(list)
    for spec in manifest.layers:
        if spec.is_osm and spec.name not in vector_data:
            osm_groups[manifest.source_path(spec)].append(spec)
    if osm_groups:
        from twin.geo.osm import read_osm_layers

        for path, specs in osm_groups.items():
            t = time.perf_counter()
            frames = read_osm_layers(path, {s.name: dict(s.osm_tags or {}) for s in specs})
            for spec in specs:
                frame = frames[spec.name]
                data[spec.name] = frame.to_crs(crs) if len(frame) else frame.set_crs(WGS84, allow_override=True).to_crs(crs)
            timings[f"osm:{path.name}"] = time.perf_counter() - t
            feedback.check()

    feedback.progress(30, "reading vector and raster layers")
    for spec in manifest.layers:
        if spec.name in vector_data:
            data[spec.name] = vector_data[spec.name]
            continue
        if spec.name in data:
            continue
        t = time.perf_counter()
        path = manifest.source_path(spec)
        if spec.kind == "raster":
            categorical = spec.role in ("landcover", "rain_zones")
            data[spec.name] = read_grid(path, dst_crs=crs, categorical=categorical, name=spec.name, units=spec.units or "")
        elif spec.kind == "table":
            data[spec.name] = read_rain_table(path)
        else:
            data[spec.name] = read_vector(path, layer=spec.layer, dst_crs=crs)
        timings[f"read:{spec.name}"] = time.perf_counter() - t
        feedback.check()

    boundary = None
    for spec in manifest.layers_with_role("boundary"):
        frame = data[spec.name]
        if len(frame) == 0:
            raise input_error(manifest.source_path(spec), "", "the boundary layer has no features")
        frame, _ = check_geometries(frame)
        boundary = shapely.union_all(frame.geometry.values)

    feedback.progress(60, "checking geometries")
    problems = []
    for spec in manifest.layers:
        value = data[spec.name]
        if isinstance(value, gpd.GeoDataFrame):
            if spec.name in vector_data:
                reports[spec.name] = GeometryReport(**value.attrs.get("geometry_report", {})) if value.attrs.get("geometry_report") else GeometryReport(features_in=len(value))
                continue
            if len(value) == 0 and spec.role not in ("other", "water", "natural", "pois", "shelters"):
                problems.append(Problem(str(manifest.source_path(spec)), f"layer {spec.name!r}",
                                        "no features; check the source file and its osm_tags/layer name"))
                continue
            checked, report = check_geometries(value, extent=boundary)
            checked.attrs["geometry_report"] = {k: v for k, v in report.to_dict().items()}
            data[spec.name] = checked
            reports[spec.name] = report
    if problems:
        raise InputError(problems)

    tree = _build_tree(manifest, crs, data, reports)
    timings["one_map_total"] = time.perf_counter() - t0
    feedback.progress(70, "one map ready")
    return OneMap(manifest=manifest, crs=crs, tree=tree, data=data, reports=reports, boundary=boundary, timings_s=timings)


def _build_tree(manifest: CityManifest, crs: CRS, data: dict, reports: dict) -> LayerTree:
    tree = LayerTree()
    order = {role: i for i, role in enumerate(ROLE_ORDER)}
    for spec in sorted(manifest.layers, key=lambda s: order.get(s.role, len(order))):
        value = data.get(spec.name)
        meta: dict[str, object] = {"role": spec.role, "crs": crs_label(crs)}
        if isinstance(value, gpd.GeoDataFrame):
            meta["features"] = len(value)
            meta["extent"] = [float(v) for v in value.total_bounds] if len(value) else None
            meta["geometry_report"] = reports[spec.name].summary() if spec.name in reports else ""
        elif isinstance(value, Grid):
            meta["shape"] = list(value.shape)
            meta["cell_size_m"] = list(value.cell_size)
            meta["extent"] = list(value.bounds)
        elif isinstance(value, pd.DataFrame):
            meta["rows"] = len(value)
        layer = Layer(name=spec.name, role=spec.role, source=str(manifest.source_path(spec)), kind=spec.kind,
                      crs=crs_label(crs), visible=spec.visible, opacity=spec.opacity,
                      group=spec.group or DEFAULT_GROUPS.get(spec.role, "Other"), metadata=meta)
        if spec.style:
            layer.style = parse_style(spec.style, source=str(manifest.path), where=f"layer {spec.name!r}: style")
        else:
            layer.style = default_style(spec.role)
        layer.data = value
        tree.add(layer, group=layer.group)
    return tree
