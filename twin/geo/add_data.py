"""File > Add layer and drag and drop: any file the one map understands, added to
the open one map as new layers in the "Added" group.

Vector files (one layer per GeoPackage/KML layer), rasters, OpenStreetMap
extracts (several layers from one pass), 3D models and CityJSON are read,
reprojected (or placed) in the project CRS and checked before anything is
added: a file that cannot be read leaves the layer tree and the data as they
were.  Features outside the city extent are kept and counted, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from twin.errors import InputError, Problem, input_error
from twin.geo.crs import WGS84, crs_label
from twin.geo.layers import ROLES, Layer
from twin.geo.manifest import OSM_SUFFIXES, RASTER_SUFFIXES
from twin.geo.onemap import ROLE_ORDER, OneMap
from twin.geo.raster import Grid, read_grid
from twin.geo.role_styles import default_style
from twin.geo.style import CategorisedStyle, GraduatedStyle, SingleStyle, Style, auto_categories
from twin.geo.validate import GeometryReport, check_geometries
from twin.geo.vector import VECTOR_SUFFIXES, read_vector
from twin.scene.mesh_io import MESH_SUFFIXES

ADDED_GROUP = "Added"
CITYJSON_SUFFIXES = (".city.json",)
OSM_READ_SUFFIXES = OSM_SUFFIXES + (".osm.bz2", ".osm.gz")
VECTOR_ADD_SUFFIXES = VECTOR_SUFFIXES + (".kmz", ".gpx", ".tab", ".mif")
#: Every suffix File > Add layer accepts (for the file dialog filter); ``.json`` is GeoJSON or CityJSON.
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(dict.fromkeys(
    CITYJSON_SUFFIXES + OSM_READ_SUFFIXES + VECTOR_ADD_SUFFIXES + RASTER_SUFFIXES + MESH_SUFFIXES))

#: Layers taken from an OSM extract: name -> (role, osmnx-style tag filter), as in the sample manifests.
OSM_LAYERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Buildings": ("buildings", {"building": True}),
    "Roads": ("roads", {"highway": True}),
    "Land use": ("landuse", {"landuse": True, "leisure": ["park", "garden", "pitch", "playground", "stadium",
                                                         "sports_centre", "golf_course", "nature_reserve", "marina"]}),
    "Water": ("water", {"natural": ["water"], "water": True, "waterway": True}),
    "Points of interest": ("pois", {"amenity": ["hospital", "fire_station", "police", "school", "parking",
                                                "shelter"], "leisure": ["stadium"],
                                    "emergency": ["assembly_point"]}),
}
MESH_STYLE_FILL = "#d9d0c1"


@dataclass
class _Pending:
    """A layer read and checked, not yet in the one map."""

    name: str
    role: str
    kind: str
    data: Any
    style: Style
    metadata: dict[str, Any] = field(default_factory=dict)
    report: GeometryReport | None = None


def file_kind(path: str | Path) -> str:
    """"cityjson", "osm", "mesh", "raster" or "vector" from the file name (and a peek into .json files)."""
    from twin.geo.cityjson import is_cityjson

    path = Path(path)
    lower = path.name.lower()
    if lower.endswith(CITYJSON_SUFFIXES):
        return "cityjson"
    if lower.endswith(OSM_READ_SUFFIXES):
        return "osm"
    suffix = path.suffix.lower()
    if suffix in MESH_SUFFIXES:
        return "mesh"
    if suffix in RASTER_SUFFIXES:
        return "raster"
    if suffix == ".json" and is_cityjson(path):
        return "cityjson"
    if suffix in VECTOR_ADD_SUFFIXES:
        return "vector"
    raise input_error(path, "", f"unknown file type {suffix or path.name!r}; Twin adds layers from "
                      f"{supported_formats_text()}")


def supported_formats_text() -> str:
    """The formats in words, for error messages and the file dialog."""
    return ("vector files (GeoPackage, Shapefile or zipped Shapefile, GeoJSON, FlatGeobuf, KML, GML, GPX, "
            "GeoParquet), rasters (GeoTIFF/COG, VRT, ASCII grid, NetCDF), OpenStreetMap extracts (.osm.pbf, "
            ".osm), 3D models (OBJ, PLY, STL, glTF/GLB, VTP/VTK, OFF) and CityJSON (.city.json, .json)")


def _base_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem


def _extent_geometry(one_map: OneMap) -> shapely.Geometry | None:
    if one_map.boundary is not None:
        return one_map.boundary
    try:
        return shapely.box(*one_map.extent())
    except (ValueError, IndexError):
        return None


def _extent_box(one_map: OneMap) -> tuple[float, float, float, float] | None:
    geom = _extent_geometry(one_map)
    return tuple(float(v) for v in shapely.bounds(geom)) if geom is not None else None  # type: ignore[return-value]


def _vector_style(role: str, frame: gpd.GeoDataFrame) -> Style:
    style = default_style(role)
    column = getattr(style, "field", None)
    if column is not None and column not in frame.columns:
        return SingleStyle()
    return style


def _checked_vector(one_map: OneMap, frame: gpd.GeoDataFrame, *, name: str, role: str,
                    source_crs: CRS | None, extra: dict[str, Any]) -> _Pending:
    """Reproject, check geometries against the city extent, and describe a vector layer."""
    if source_crs is not None and source_crs != one_map.crs:
        frame = frame.to_crs(one_map.crs)
    checked, report = check_geometries(frame, extent=_extent_geometry(one_map))
    checked.attrs["geometry_report"] = report.to_dict()
    meta = {
        "role": role, "crs": crs_label(one_map.crs),
        "source_crs": crs_label(source_crs) if source_crs is not None else None,
        "features": len(checked),
        "extent": [float(v) for v in checked.total_bounds] if len(checked) else None,
        "geometry_report": report.summary(),
        "geometry_counts": {"features_in": report.features_in, "repaired": report.repaired,
                            "empty_dropped": report.empty_dropped, "outside_extent": report.outside_extent},
        **extra,
    }
    return _Pending(name=name, role=role, kind="vector", data=checked, style=_vector_style(role, checked),
                    metadata=meta, report=report)


# ----------------------------------------------------------------------------- readers


def _read_vectors(one_map: OneMap, path: Path, base: str, named: bool, role: str,
                  layer: str | None) -> list[_Pending]:
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    if path.suffix.lower() == ".parquet":
        sources: list[str | None] = [None]
    else:
        gdal_path = f"zip://{path}" if path.suffix.lower() == ".zip" else str(path)
        try:
            listed = pyogrio.list_layers(gdal_path)
        except (DataSourceError, DataLayerError) as exc:
            raise input_error(path, "", f"not a readable vector file ({str(exc).strip()[:200]}); Twin adds "
                              f"layers from {supported_formats_text()}") from None
        every = [str(row[0]) for row in listed]
        spatial = [str(row[0]) for row in listed if row[1] is not None]
        if layer is not None and layer not in spatial:
            problem = "has no geometries (an attribute table)" if layer in every else "does not exist"
            raise input_error(path, "layer", f"layer {layer!r} {problem}; the file's layers with geometries: "
                              f"{', '.join(spatial) or 'none'}")
        if not spatial:
            raise input_error(path, "", "the file holds no layers with geometries")
        sources = [layer] if layer is not None else list(spatial)

    pending: list[_Pending] = []
    empty: list[str] = []
    for source in sources:
        frame = read_vector(path, layer=source)
        if len(sources) == 1:
            name = base
        else:
            name = f"{base}: {source}" if named else str(source)
        if len(frame):
            item = _checked_vector(one_map, frame, name=name, role=role, source_crs=CRS.from_user_input(frame.crs),
                                   extra={"source_format": "vector", "source_layer": source})
            if len(item.data):
                pending.append(item)
                continue
        empty.append(str(source or path.name))
    if not pending:
        what = "the file holds no features" if len(sources) == 1 else f"every layer is empty ({', '.join(empty)})"
        raise input_error(path, f"layer {layer!r}" if layer else "", f"no features to add: {what} "
                          "(or only empty geometries)")
    return pending


def _raster_style(categorical: bool, grid: Grid) -> Style:
    if categorical:
        values = grid.values[grid.valid_mask()]
        codes = np.unique(values)[:50]
        return CategorisedStyle(field="value", categories=auto_categories(codes))
    return GraduatedStyle(field="value", ramp="viridis", method="quantile", n_classes=9)


def _read_raster(one_map: OneMap, path: Path, name: str, role: str) -> list[_Pending]:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as src:
            dtype = np.dtype(src.dtypes[0])
    except RasterioIOError as exc:
        raise input_error(path, "", f"not a readable raster ({str(exc)[:200]}); Twin adds layers from "
                          f"{supported_formats_text()}") from None
    categorical = bool(np.issubdtype(dtype, np.integer))
    grid = read_grid(path, dst_crs=one_map.crs, categorical=categorical, name=name)
    if grid.values.size == 0 or not grid.valid_mask().any():
        raise input_error(path, "", "the raster holds no data (every cell is nodata)")
    extent = _extent_box(one_map)
    b = grid.bounds
    inside = extent is None or (b[0] <= extent[2] and b[2] >= extent[0] and b[1] <= extent[3] and b[3] >= extent[1])
    style = default_style(role) if role != "other" else _raster_style(categorical, grid)
    meta = {"role": role, "crs": crs_label(one_map.crs), "source_format": "raster", "shape": list(grid.shape),
            "cell_size_m": list(grid.cell_size), "extent": list(grid.bounds), "categorical": categorical,
            "dtype": str(dtype), "outside_extent": not inside}
    return [_Pending(name=name, role=role, kind="raster", data=grid, style=style, metadata=meta)]


def _read_osm(one_map: OneMap, path: Path, base: str, named: bool, layer: str | None) -> list[_Pending]:
    from twin.geo.osm import read_osm_layers

    if layer is not None and layer not in OSM_LAYERS:
        raise input_error(path, "layer", f"no OSM layer {layer!r}; choose one of {', '.join(OSM_LAYERS)}")
    wanted = {layer: OSM_LAYERS[layer]} if layer is not None else OSM_LAYERS
    frames = read_osm_layers(path, {key: tags for key, (_, tags) in wanted.items()})
    pending = []
    for key, (role, _) in wanted.items():
        frame = frames[key]
        if len(frame) == 0:
            continue
        frame = frame.set_crs(WGS84, allow_override=True) if frame.crs is None else frame
        name = f"{base}: {key}" if named else key
        pending.append(_checked_vector(one_map, frame, name=name, role=role, source_crs=WGS84,
                                       extra={"source_format": "osm", "osm_tags": wanted[key][1],
                                              "unbuildable": int(frame.attrs.get("unbuildable", 0))}))
    if not pending:
        raise input_error(path, "", "no features to add: the extract has no buildings, roads, land use, water "
                          "or points of interest")
    return pending


def _mesh_metadata(mesh: Any, crs: CRS, placement: dict, source_format: str) -> dict[str, Any]:
    b = mesh.bounds
    return {"crs": crs_label(crs), "source_format": source_format, "points": int(mesh.n_points),
            "triangles": int(mesh.n_cells), "extent": [float(b[0]), float(b[2]), float(b[1]), float(b[3])],
            "z_range_m": [float(b[4]), float(b[5])], "placement": placement}


def _read_model(one_map: OneMap, path: Path, name: str, role: str,
                origin: tuple[float, ...] | None) -> list[_Pending]:
    from twin.scene.mesh_io import place_mesh, read_mesh

    mesh = read_mesh(path)
    try:
        placed, placement = place_mesh(mesh, origin=origin, crs_extent=_extent_box(one_map))
    except ValueError as exc:
        raise input_error(path, "origin", f"{exc}; give origin=(x, y, z) in the project CRS") from None
    meta = {"role": role, **_mesh_metadata(placed, one_map.crs, placement, path.suffix.lower().lstrip("."))}
    return [_Pending(name=name, role=role, kind="mesh", data=placed, style=SingleStyle(fill=MESH_STYLE_FILL),
                     metadata=meta)]


def _read_city_model(one_map: OneMap, path: Path, base: str, role: str,
                     origin: tuple[float, ...] | None) -> list[_Pending]:
    from twin.geo.cityjson import SURFACE_TYPES, read_cityjson
    from twin.scene.mesh_io import faces_to_mesh, plan_placement

    model = read_cityjson(path)
    info: dict[str, Any] = {"version": model.version, "reference_system": model.reference_system or None,
                            "objects": len(model.objects), "lod": sorted(set(model.objects["lod"])),
                            "notes": list(model.notes)}
    if model.crs is not None:
        source_crs = model.crs
        model = model.to_crs(one_map.crs)
        placement: dict[str, Any] = {"mode": "georeferenced", "offset": [0.0, 0.0, 0.0], "origin": None,
                                     "source_crs": crs_label(source_crs)}
    else:
        source_crs = None
        try:
            placement = plan_placement(model.vertices, origin, _extent_box(one_map))
        except ValueError as exc:
            raise input_error(path, "origin", f"{exc}; give origin=(x, y, z) in the project CRS") from None
        placement["crs_assumed"] = "the file names no referenceSystem: large coordinates are taken as the " \
                                   "project CRS, small ones as a local model"
        model = model.translated(tuple(placement["offset"]))
    mesh = faces_to_mesh(model.vertices, model.ring_index, model.ring_offsets, model.face_offsets,
                         {"feature": model.face_object.astype(np.int32), "surface": model.face_surface.astype(np.int8)})
    if mesh.n_cells == 0:
        raise input_error(path, "CityObjects", "no surface could be triangulated")
    mesh.field_data["surface_types"] = np.array(SURFACE_TYPES)
    info["skipped_faces"] = int(mesh.field_data["skipped_faces"][0])
    frame = model.to_frame()
    frame["feature"] = np.arange(len(frame), dtype=np.int32)
    if frame.crs is None:
        frame = frame.set_crs(one_map.crs)
    types = frame["cityjson_type"].astype(str)
    info["objects_by_type"] = {str(k): int(v) for k, v in types.value_counts().items()}
    mesh_meta = {"role": "other", **_mesh_metadata(mesh, one_map.crs, placement, "cityjson"), "cityjson": info}
    added = [_Pending(name=f"{base} 3D", role="other", kind="mesh", data=mesh,
                      style=SingleStyle(fill=MESH_STYLE_FILL), metadata=mesh_meta)]
    # Footprints only for buildings: a terrain or road surface is no building.
    buildings = frame[types.str.startswith("Building").to_numpy()]
    if len(buildings):
        footprints = _checked_vector(
            one_map, buildings, name=f"{base} buildings", role="buildings" if role == "other" else role,
            source_crs=None, extra={"source_format": "cityjson", "cityjson": dict(info),
                                    "source_crs": crs_label(source_crs) if source_crs is not None else None})
        if len(footprints.data):
            added.append(footprints)
    return added


# ----------------------------------------------------------------------------- adding


def _unique_names(one_map: OneMap, wanted: Sequence[str]) -> list[str]:
    taken = {layer.name for layer in one_map.tree} | set(one_map.data)
    out = []
    for name in wanted:
        candidate, k = name, 2
        while candidate in taken:
            candidate, k = f"{name} ({k})", k + 1
        taken.add(candidate)
        out.append(candidate)
    return out


def _commit(one_map: OneMap, path: Path, pending: list[_Pending]) -> list[Layer]:
    """Add the layers on top of the "Added" group, all or none."""
    order = {role: i for i, role in enumerate(ROLE_ORDER)}
    pending = sorted(pending, key=lambda p: (p.kind != "mesh", order.get(p.role, len(order))))
    names = _unique_names(one_map, [p.name for p in pending])
    layers = []
    for item, name in zip(pending, names):
        layer = Layer(name=name, role=item.role, source=str(path), kind=item.kind, crs=crs_label(one_map.crs),
                      style=item.style, group=ADDED_GROUP, metadata=item.metadata)
        layer.data = item.data
        layers.append(layer)
    tree = one_map.tree
    new_group = tree.group(ADDED_GROUP) is None
    try:
        if new_group:
            tree.add_group(ADDED_GROUP, index=0)
        for i, (layer, item) in enumerate(zip(layers, pending)):
            one_map.data[layer.name] = item.data
            if item.report is not None:
                one_map.reports[layer.name] = item.report
            tree.add(layer, group=ADDED_GROUP, index=i)
    except BaseException:
        for layer in reversed(layers):
            one_map.data.pop(layer.name, None)
            one_map.reports.pop(layer.name, None)
            if tree.find(layer.name) is layer:
                tree.remove(layer.name, kind="layer")
        if new_group and tree.group(ADDED_GROUP) is not None:
            tree.remove(ADDED_GROUP, kind="group")
        raise
    return layers


def add_layer_from_file(one_map: OneMap, path: str | Path, *, name: str | None = None, role: str = "other",
                        layer: str | None = None, origin: tuple[float, ...] | None = None) -> list[Layer]:
    """Read a file into the one map as new layer(s) in the "Added" group, reprojected to ``one_map.crs``.

    ``name`` names the layer (default: the file name without its suffix;
    taken names get " (2)", " (3)"...).  ``role`` is what the layers are to the
    city (OSM and CityJSON layers get their own roles).  ``layer`` picks one
    layer of a multi-layer vector file or one OSM layer ("Buildings",
    "Roads"...).  ``origin`` (x, y[, z], project CRS, metres) is where a 3D
    model in local coordinates goes (default: the centre of the city extent).
    Returns the layers added, top first; raises InputError (and adds nothing)
    when the file cannot be read.
    """
    path = Path(path)
    problems = []
    if role not in ROLES:
        problems.append(Problem(str(path), "role", f"unknown role {role!r}; use one of {', '.join(ROLES)}"))
    if origin is not None and not _is_point(origin):
        problems.append(Problem(str(path), "origin", "must be (x, y) or (x, y, z) in the project CRS, metres"))
    if name is not None and not name.strip():
        problems.append(Problem(str(path), "name", "a layer name cannot be blank"))
    if problems:
        raise InputError(problems)
    if not path.exists():
        raise input_error(path, "", "file not found; check the path")
    if path.is_dir():
        raise input_error(path, "", f"is a folder; choose a file: {supported_formats_text()}")
    kind = file_kind(path)
    if layer is not None and kind not in ("vector", "osm"):
        raise input_error(path, "layer", "only vector files and OSM extracts have layers to choose from")
    base = name.strip() if name is not None else _base_name(path)
    try:
        if kind == "vector":
            pending = _read_vectors(one_map, path, base, name is not None, role, layer)
        elif kind == "raster":
            pending = _read_raster(one_map, path, base, role)
        elif kind == "osm":
            pending = _read_osm(one_map, path, base, name is not None, layer)
        elif kind == "mesh":
            pending = _read_model(one_map, path, base, role, origin)
        else:
            pending = _read_city_model(one_map, path, base, role, origin)
    except (OSError, ValueError, RuntimeError) as exc:
        # GDAL, PROJ and VTK failures deep in a damaged file: still the file's fault, said as such.
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise input_error(path, "", f"could not be read as {kind} data ({text}); check the file or convert it "
                          f"to one of: {supported_formats_text()}") from None
    return _commit(one_map, path, pending)


def _is_point(origin: Any) -> bool:
    """Whether ``origin`` is (x, y) or (x, y, z) of finite numbers."""
    try:
        values = np.asarray(origin, dtype=float)
    except (TypeError, ValueError):
        return False
    return values.ndim == 1 and len(values) in (2, 3) and bool(np.isfinite(values).all())
