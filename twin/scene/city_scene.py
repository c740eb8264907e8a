"""The 3D city scene (no Qt): one merged mesh and one actor per map layer.

:class:`CityScene` turns a :class:`~twin.city.city.City` into PolyData meshes —
terrain (or a flat ground plane), extruded buildings, draped roads and
boundary lines, land use and water areas, POI points — each with a cell
array ``feature`` (the row of the layer's data the cell belongs to) and an
``RGBA`` uint8 colour array from the layer's style.  Selection, restyling,
visibility and opacity change arrays and actor properties in place; nothing
is rebuilt.  Coordinates are the project CRS in metres; heights are metres
times the scene's ``z_scale``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyvista as pv
import shapely

from twin.geo.layers import Layer
from twin.geo.raster import Grid
from twin.geo.style import SingleStyle, Style, colours_for, parse_colour, style_to_dict
from twin.progress import Feedback
from twin.scene.meshes import (
    TerrainSurface,
    ZFunction,
    append_polydata,
    buildings_lod,
    extrude_polygons,
    ground_plane,
    lines_mesh,
    points_mesh,
    polygons_mesh,
    terrain_lod,
    terrain_mesh,
)

GROUND = "Ground"
ROAD_NETWORK = "Road network"
SELECTED_COLOUR = "#ffd400"
TERRAIN_MAX_CELLS = 1_000_000

#: Height (m, not exaggerated) of overlays above the ground, so they do not z-fight with it.
LIFT_M = {"landuse": 0.3, "natural": 0.4, "water": 0.6, "roads": 1.0, "inflows": 1.5, "other": 0.8,
          "boundary": 2.0, "pois": 3.0, "shelters": 3.0}
#: Line widths and point sizes in screen pixels.
LINE_WIDTH_PX = {"roads": 2.0, "boundary": 3.0, "inflows": 3.0}
POINT_SIZE_PX = 11.0
#: Lighting of lit surfaces (buildings), and the sun and fill light of :func:`set_sun`.
SURFACE_AMBIENT, SURFACE_DIFFUSE = 0.3, 0.75
SUN_INTENSITY, FILL_INTENSITY = 0.85, 0.25
#: The sun the app starts with (azimuth, elevation; degrees): mid-morning in the south-east.
DEFAULT_SUN = (135.0, 35.0)
#: Mean cosine between a face and the camera headlight, for shading the unlit level of detail.
_FILL_COSINE = 0.6
#: Ambient and diffuse of the flat layers (ground, terrain, areas) while shadows are on: they
#: must be lit to take the shadow pass, and this keeps sunlit ground near its unlit colour.
SHADOWED_FLAT_AMBIENT, SHADOWED_FLAT_DIFFUSE = 0.55, 0.5
_POLYGONAL, _LINEAL = (3, 6), (1, 2, 5)

# ----------------------------------------------------------------------------- default colours

DEFAULT_FILL = {"water": "#7fb3d5", "boundary": "#7b3294", "inflows": "#1f78b4", "landuse": "#dcdad3",
                "natural": "#cfd8bf", "roads": "#8a8e92", "pois": "#f781bf", "shelters": "#4daf4a",
                "buildings": "#d9c9ad"}
GROUND_COLOUR = "#e9e6df"
#: Building colour by height, low to high (a light, warm ramp that keeps roofs readable).
BUILDING_RAMP = ("#ece7dc", "#dccdb1", "#cba887", "#b67a58", "#8e4536")
#: Terrain tint by elevation (2nd to 98th percentile), shaded by a hillshade.
TERRAIN_RAMP = ("#b7cc9c", "#d4d6a6", "#d3bf95", "#bba58e", "#d9d4cf")
ROAD_COLOURS = {
    **dict.fromkeys(("motorway", "trunk", "primary", "motorway_link", "trunk_link", "primary_link"), "#50555b"),
    **dict.fromkeys(("secondary", "tertiary", "secondary_link", "tertiary_link"), "#666b71"),
    **dict.fromkeys(("residential", "unclassified", "living_street", "road", "service", "busway"), "#83878c"),
    **dict.fromkeys(("pedestrian", "footway", "path", "steps", "cycleway", "bridleway", "track", "corridor"),
                    "#b0a794"),
}
LANDUSE_COLOURS = {
    "residential": "#e3ded6", "commercial": "#efd9d5", "retail": "#f2cfca", "industrial": "#e4d4df",
    "railway": "#dcd2dc", "construction": "#d0d0b6", "brownfield": "#d0d0b6", "garages": "#dcd9cc",
    "religious": "#d5d2c8", "military": "#e8c3bf", "cemetery": "#aacbaf", "allotments": "#c9e1bf",
    "farmland": "#eef0d5", "farmyard": "#f2dcba", "orchard": "#aedfa3", "vineyard": "#aedfa3",
    "meadow": "#c5e5b0", "grass": "#c5e5b0", "village_green": "#c5e5b0", "recreation_ground": "#c5e5b0",
    "forest": "#9fc98f", "park": "#b9dfa4", "garden": "#c3e3ae", "pitch": "#9fd6b5", "playground": "#c6ebd9",
    "stadium": "#b8e0c9", "sports_centre": "#b8e0c9", "golf_course": "#b5e3b5", "nature_reserve": "#b6d9a8",
    "marina": "#a5cde0", "basin": "#a5cde0", "reservoir": "#a5cde0", "flowerbed": "#c3e3ae",
}
NATURAL_COLOURS = {
    "wood": "#9fc98f", "scrub": "#c1d5a2", "grassland": "#c5e5b0", "heath": "#d6d99f", "beach": "#f2e4b5",
    "sand": "#f2e4b5", "bare_rock": "#e0d8cf", "scree": "#e0d8cf", "rock": "#d0c8bf", "water": "#8fbfdc",
    "wetland": "#b8d8cc", "cliff": "#8f8a80", "coastline": "#5f8fb0", "tree_row": "#7fb36f", "tree": "#6fa35f",
}
POI_COLOURS = {"hospital": "#e41a1c", "fire_station": "#ff7f00", "police": "#377eb8", "school": "#984ea3",
               "stadium": "#a65628", "parking": "#7f7f7f", "shelter": "#4daf4a", "other": "#f781bf"}
#: Land cover by land class code (see twin/geo/data/tnls_classes.csv), muted for draping on terrain.
LAND_CLASS_COLOURS = {"01": "#e8e3a6", "02": "#d9c98f", "03": "#86b06f", "04": "#b8d896", "00": "#9ccbbb",
                      "20": "#e0d9cc", "10": "#bdbab3", "11": "#7fb3d5", "12": "#d8c8a8"}


def _rgba(hex_colour: str) -> np.ndarray:
    return np.array(parse_colour(hex_colour), dtype=np.uint8)


def _by_key(keys: pd.Series | np.ndarray, palette: dict[str, str], default: str) -> np.ndarray:
    """(n, 4) uint8 colours of text keys through a palette."""
    table = {k: i for i, k in enumerate(palette)}
    colours = np.array([parse_colour(c) for c in palette.values()] + [parse_colour(default)], dtype=np.uint8)
    index = pd.Series(np.asarray(keys, dtype=object)).map(table).fillna(len(palette)).to_numpy(dtype=np.int64)
    return colours[index]


def ramp(values: np.ndarray, stops: tuple[str, ...], lo: float, hi: float) -> np.ndarray:
    """(n, 4) uint8 colours interpolated along hex ``stops`` for values from ``lo`` to ``hi``."""
    stop_rgba = np.array([parse_colour(c) for c in stops], dtype=float)
    t = np.clip((np.asarray(values, dtype=float) - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    t = np.nan_to_num(t, nan=0.0)
    xp = np.linspace(0.0, 1.0, len(stops))
    return np.column_stack([np.interp(t, xp, stop_rgba[:, k]) for k in range(4)]).astype(np.uint8)


def _role_default(role: str) -> Style | None:
    try:
        from twin.geo.role_styles import default_style
    except ImportError:  # an older tree without role defaults: only the bare single style is "unstyled"
        return None
    return default_style(role)


def is_default_style(style: Style | None, role: str = "other") -> bool:
    """True when a layer still has the style it started with (the bare single style or the
    2D map's default for its role): the scene then uses its own 3D colours for the role,
    and follows the layer's style once the user has chosen one."""
    if style is None:
        return True
    given = style_to_dict(style)
    if given == style_to_dict(SingleStyle()):
        return True
    default = _role_default(role)
    return default is not None and given == style_to_dict(default)


def _first_text_column(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for column in columns:
        if column in frame.columns:
            out = out.where(out.notna(), frame[column].astype(object))
    return out


# ----------------------------------------------------------------------------- camera


def camera_for_extent(extent: tuple[float, float, float, float], *, z: float = 0.0, top: float = 0.0,
                      elevation_deg: float = 45.0, heading_deg: float = 0.0, view_angle_deg: float = 30.0,
                      aspect: float = 1.6) -> list[tuple[float, float, float]]:
    """Oblique camera ``[position, focal point, view up]`` that shows the whole extent.

    Looks along ``heading_deg`` (0: from the south towards north), down at
    ``elevation_deg`` above the horizon, at the centre of ``extent`` (m) at
    ground height ``z``; ``top`` (m) is the tallest thing above the ground, so
    it stays in view too; ``aspect`` is the window's width / height.
    """
    xmin, ymin, xmax, ymax = extent
    hd, el = math.radians(heading_deg), math.radians(elevation_deg)
    look = np.array([math.sin(hd) * math.cos(el), math.cos(hd) * math.cos(el), -math.sin(el)])
    right = np.array([math.cos(hd), -math.sin(hd), 0.0])
    up = np.cross(right, look)
    focal = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2, z + top * 0.25])
    # Fit the perspective frustum to the box's corners: a corner at lateral offset
    # (u, v) and depth t beyond the focal plane is in view when |u| <= (d + t) tan(half
    # angle across) and |v| <= (d + t) tan(half angle up); take the smallest such d.
    corners = np.array([(x, y, zz) for x in (xmin, xmax) for y in (ymin, ymax) for zz in (z, z + top)]) - focal
    u, v, t = corners @ right, corners @ up, corners @ look
    half_v = math.tan(math.radians(view_angle_deg) / 2)
    half_u = half_v * aspect
    distance = max(float(np.max(np.abs(u) / half_u - t)), float(np.max(np.abs(v) / half_v - t)), 1.0) * 1.04
    position = focal - distance * look
    return [tuple(map(float, position)), tuple(map(float, focal)), (0.0, 0.0, 1.0)]  # type: ignore[list-item]


def top_down_camera(extent: tuple[float, float, float, float], z: float = 0.0) -> list[tuple[float, float, float]]:
    """Camera straight above the centre of ``extent`` (north up), for a parallel projection."""
    xmin, ymin, xmax, ymax = extent
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    height = 2.0 * max(xmax - xmin, ymax - ymin) + 1000.0
    return [(cx, cy, z + height), (cx, cy, z), (0.0, 1.0, 0.0)]


# ----------------------------------------------------------------------------- the scene


@dataclass
class LayerMesh:
    """One layer's mesh and how to draw it.

    ``draw``: "surface" (lit polygons: buildings), "flat" (unlit polygons:
    ground, terrain, areas), "lines" or "points".  ``base_rgba`` holds the
    style's colours before any selection (per cell, or per point when
    ``on_points``).  ``lod`` is a much cheaper mesh of the same features
    drawn instead while the camera moves: cell data ``feature`` too, or for
    the terrain point data ``full_point`` (see :func:`terrain_lod`);
    ``closed`` marks outward-facing prisms, whose back faces are never seen.
    """

    name: str
    role: str
    draw: str
    mesh: pv.PolyData
    base_rgba: np.ndarray
    layer: Layer | None = None
    on_points: bool = False
    line_width: float = 2.0
    point_size: float = POINT_SIZE_PX
    style_key: dict[str, Any] = field(default_factory=dict)
    lod: pv.PolyData | None = None
    closed: bool = False

    @property
    def rgba(self) -> np.ndarray:
        """The live colour array of the mesh (writing into it recolours the actor after ``Modified``)."""
        data = self.mesh.point_data if self.on_points else self.mesh.cell_data
        return data["RGBA"]

    @property
    def feature(self) -> np.ndarray | None:
        return self.mesh.cell_data["feature"] if "feature" in self.mesh.cell_data else None


class CityScene:
    """A city's layers as one merged mesh each, ready for a pyvista plotter."""

    def __init__(self, city: Any, *, terrain_max_cells: int = TERRAIN_MAX_CELLS) -> None:
        self.city = city
        self.terrain_max_cells = terrain_max_cells
        self.z_scale = 1.0
        self.layers: dict[str, LayerMesh] = {}
        self.actors: dict[str, Any] = {}
        self.lod_actors: dict[str, Any] = {}
        self.lod_active = False
        self.sun = DEFAULT_SUN
        self.shadows = False
        self.surface: TerrainSurface | None = None
        self.timings_s: dict[str, float] = {}
        self._selected: tuple[str, np.ndarray] = ("", np.empty(0, dtype=np.int64))
        self._buildings: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}

    # ------------------------------------------------------------------ building

    @property
    def meshes(self) -> dict[str, pv.PolyData]:
        """Mesh by layer name (plus "Ground" for flat cities)."""
        return {name: lm.mesh for name, lm in self.layers.items()}

    def colours(self, name: str) -> np.ndarray:
        """The live ``RGBA`` array (uint8, per cell; per point for the terrain) of a layer's mesh."""
        return self.layers[name].rgba

    def build(self, z_scale: float = 1.0, feedback: Feedback | None = None) -> dict[str, pv.PolyData]:
        """Make every layer's mesh (hidden layers too, so showing one is instant)."""
        feedback = feedback or Feedback()
        self.z_scale = float(z_scale)
        self.layers = {}
        self.actors = {}
        self.timings_s = {}
        self._buildings = {}
        tree = self.city.one_map.tree
        layers = list(tree)
        t = time.perf_counter()
        feedback.progress(0, "building the terrain")
        self._build_ground(layers)
        self.timings_s["terrain"] = time.perf_counter() - t
        built_roads = False
        for i, layer in enumerate(layers):
            feedback.progress(10 + 85 * i / max(len(layers), 1), f"building {layer.name}")
            t = time.perf_counter()
            lm = self._build_layer(layer)
            if lm is not None:
                self._add(lm)
                built_roads |= layer.role == "roads"
            self.timings_s[layer.name] = time.perf_counter() - t
        network = getattr(self.city, "network", None)
        if not built_roads and network is not None and network.n_edges:
            mesh = lines_mesh(network.geometry, self._ground_z, LIFT_M["roads"], z_scale=self.z_scale,
                              max_segment=self._spacing)
            keys = np.asarray(network.road_class_names, dtype=object)[network.road_class]
            colours = _by_key(keys, ROAD_COLOURS, DEFAULT_FILL["roads"])
            self._add(LayerMesh(ROAD_NETWORK, "roads", "lines", mesh, colours[mesh.cell_data["feature"]],
                                line_width=LINE_WIDTH_PX["roads"]))
        feedback.progress(100, "3D scene ready")
        return self.meshes

    def _add(self, lm: LayerMesh) -> None:
        data = lm.mesh.point_data if lm.on_points else lm.mesh.cell_data
        data["RGBA"] = lm.base_rgba.copy()
        if lm.lod is not None:
            _lod_data(lm)["RGBA"] = _lod_colours(lm, self.sun)
        self.layers[lm.name] = lm

    @property
    def _ground_z(self) -> ZFunction | None:
        return self.surface

    @property
    def _spacing(self) -> float | None:
        return self.surface.spacing if self.surface is not None else None

    def _ground_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.surface(x, y) if self.surface is not None else np.zeros(len(np.atleast_1d(x)))

    def _build_ground(self, layers: list[Layer]) -> None:
        dem = getattr(self.city, "dem", None)
        self.surface = None
        if dem is not None:
            dem_layer = next((lay for lay in layers if lay.role == "dem" and lay.data is dem), None) \
                or next((lay for lay in layers if lay.role == "dem"), None)
            self.surface = TerrainSurface.from_grid(dem, self.terrain_max_cells)
            mesh = terrain_mesh(self.surface, z_scale=self.z_scale)
            lod = terrain_lod(self.surface, mesh, z_scale=self.z_scale)
            name = dem_layer.name if dem_layer is not None else "Terrain"
            lm = LayerMesh(name, "dem", "flat", mesh, np.zeros((mesh.n_points, 4), np.uint8), layer=dem_layer,
                           on_points=True, lod=lod if lod.n_cells else None)
            lm.base_rgba = self._terrain_colours(lm)
            lm.style_key = self._style_key(dem_layer)
            self._add(lm)
        else:
            mesh = ground_plane(self.city.extent())
            mesh.cell_data["feature"] = np.full(mesh.n_cells, -1, dtype=np.int32)
            self._add(LayerMesh(GROUND, "ground", "flat", mesh, np.tile(_rgba(GROUND_COLOUR), (mesh.n_cells, 1))))

    def _build_layer(self, layer: Layer) -> LayerMesh | None:
        data = layer.data
        if layer.kind == "mesh" and isinstance(data, pv.DataSet):
            return self._model_mesh(layer, data)
        if not isinstance(data, pd.DataFrame) or "geometry" not in data.columns or len(data) == 0:
            return None
        role = layer.role
        if role == "buildings":
            return self._buildings_mesh(layer)
        geoms = np.asarray(data.geometry.values, dtype=object)
        types = shapely.get_type_id(geoms)
        lift = LIFT_M.get(role, LIFT_M["other"])
        if role in ("pois", "shelters") or (types == 0).all() or (types == 4).all():
            keep = np.flatnonzero(~shapely.is_empty(geoms) & (types >= 0))
            pts = shapely.get_coordinates(shapely.point_on_surface(geoms[keep]))
            mesh = points_mesh(pts, self._ground_at(pts[:, 0], pts[:, 1]), z_offset=lift, z_scale=self.z_scale)
            mesh.cell_data["feature"] = keep.astype(np.int32)
            draw = "points"
        else:
            parts = []
            line_rows = np.flatnonzero(np.isin(types, _LINEAL) | ((role == "boundary") & np.isin(types, _POLYGONAL)))
            poly_rows = np.flatnonzero(np.isin(types, _POLYGONAL)) if role not in ("boundary", "roads") else []
            if len(line_rows):
                lines = lines_mesh(geoms[line_rows], self._ground_z, lift, z_scale=self.z_scale,
                                   max_segment=self._spacing)
                lines.cell_data["feature"] = line_rows[lines.cell_data["feature"]].astype(np.int32)
                parts.append(lines)
            if len(poly_rows):
                z: Any = self.surface if self.surface is not None else 0.0
                polys = polygons_mesh(geoms[poly_rows], z, z_offset=lift, z_scale=self.z_scale,
                                      max_segment=self._spacing)
                polys.cell_data["feature"] = poly_rows[polys.cell_data["feature"]].astype(np.int32)
                parts.append(polys)
            parts = [p for p in parts if p.n_cells]
            if not parts:
                return None
            mesh = parts[0] if len(parts) == 1 else append_polydata(parts)
            draw = "flat" if len(poly_rows) else "lines"
        if mesh.n_cells == 0:
            return None
        lm = LayerMesh(layer.name, role, draw, mesh, np.zeros((0, 4), np.uint8), layer=layer,
                       line_width=LINE_WIDTH_PX.get(role, 2.0))
        lm.point_size = POINT_SIZE_PX if is_default_style(layer.style, layer.role) else float(layer.style.point_size)
        lm.base_rgba = self._row_colours(layer)[mesh.cell_data["feature"]]
        lm.style_key = self._style_key(layer)
        return lm

    def _model_mesh(self, layer: Layer, data: pv.DataSet) -> LayerMesh | None:
        """A 3D model layer (OBJ, glTF, CityJSON surfaces...) already placed in the project CRS."""
        mesh = data if isinstance(data, pv.PolyData) else data.extract_surface()
        mesh = mesh.copy(deep=True)
        if mesh.n_cells == 0:
            return None
        mesh.points[:, 2] *= self.z_scale
        if "feature" not in mesh.cell_data:
            mesh.cell_data["feature"] = np.zeros(mesh.n_cells, dtype=np.int32)
        fill = getattr(layer.style, "fill", "#c8b89a") if layer.style is not None else "#c8b89a"
        lm = LayerMesh(layer.name, layer.role, "surface", mesh, np.tile(_rgba(fill), (mesh.n_cells, 1)), layer=layer)
        lm.style_key = self._style_key(layer)
        return lm

    def add_layer(self, layer: Layer, plotter: pv.Plotter | None = None) -> LayerMesh | None:
        """Build and show one layer added after :meth:`build` (a file the user added)."""
        lm = self._build_layer(layer)
        if lm is None:
            return None
        self._add(lm)
        if plotter is not None:
            self._add_actor(plotter, lm)
        return lm

    def _building_rows(self, layer: Layer) -> tuple[pd.DataFrame, np.ndarray] | None:
        """The city's buildings of this layer and their row in the layer's data.

        The City keeps polygonal buildings of every buildings layer, in
        manifest order; None when that cannot be matched.
        """
        buildings = getattr(self.city, "buildings", None)
        if buildings is None:
            return None
        frames = [(spec.name, frame) for spec, frame in self.city.one_map.data_for_role("buildings")]
        polygonal = [np.isin(shapely.get_type_id(np.asarray(f.geometry.values)), _POLYGONAL) for _, f in frames]
        total = sum(int(p.sum()) for p in polygonal)
        if total != len(buildings.frame):
            return None
        start = 0
        for (name, _), mask in zip(frames, polygonal):
            count = int(mask.sum())
            if name == layer.name:
                return buildings.frame.iloc[start:start + count], np.flatnonzero(mask)
            start += count
        return None

    def _buildings_mesh(self, layer: Layer) -> LayerMesh | None:
        matched = self._building_rows(layer)
        if matched is None:
            frame = layer.data
            rows = np.arange(len(frame))
            height = pd.to_numeric(frame.get("height_m", pd.Series(10.0, index=frame.index)),
                                   errors="coerce").fillna(10.0).to_numpy(float)
            base = np.full(len(frame), np.nan)
        else:
            frame, rows = matched
            height = frame["height_m"].to_numpy(float)
            base = frame["base_m"].to_numpy(float)
        geoms = np.asarray(frame.geometry.values, dtype=object)
        missing = np.isnan(base)
        if missing.any() and self.surface is None:
            base[missing] = 0.0
        elif missing.any():
            centre = shapely.get_coordinates(shapely.point_on_surface(geoms[missing]))
            base[missing] = self._ground_at(centre[:, 0], centre[:, 1])
        mesh = extrude_polygons(geoms, base, base + height, z_scale=self.z_scale)
        if mesh.n_cells == 0:
            return None
        mesh.cell_data["feature"] = rows[mesh.cell_data["feature"]].astype(np.int32)
        lod = buildings_lod(geoms, base, base + height, z_scale=self.z_scale)
        lod.cell_data["feature"] = rows[lod.cell_data["feature"]].astype(np.int32)
        lm = LayerMesh(layer.name, "buildings", "surface", mesh, np.zeros((0, 4), np.uint8), layer=layer,
                       lod=lod if lod.n_cells else None, closed=True)
        self._buildings[layer.name] = (frame.assign(height_m=height), rows)
        lm.base_rgba = self._row_colours(layer)[mesh.cell_data["feature"]]
        lm.style_key = self._style_key(layer)
        return lm

    # ------------------------------------------------------------------ colours

    @staticmethod
    def _style_key(layer: Layer | None) -> dict[str, Any]:
        return style_to_dict(layer.style) if layer is not None else {}

    def _row_values(self, layer: Layer, column: str) -> Any:
        """A column per row of the layer's data; for buildings the City's derived columns
        (heights from tags, levels or defaults; residents) come first."""
        data = layer.data
        if layer.name in self._buildings:
            frame, rows = self._buildings[layer.name]
            if column in frame.columns:
                numeric = frame[column].dtype.kind in "fiub"
                out = pd.Series(np.nan if numeric else None, index=range(len(data)),
                                dtype=float if numeric else object)
                out.iloc[rows] = frame[column].to_numpy()
                return out
        if column in data.columns:
            return data[column]
        raise KeyError(f"layer {layer.name!r} has no column {column!r}")

    def _row_colours(self, layer: Layer) -> np.ndarray:
        """RGBA (uint8) for every row of the layer's data: its style, or the role's defaults."""
        data = layer.data
        n = len(data)
        if not is_default_style(layer.style, layer.role):
            style = layer.style
            if isinstance(style, SingleStyle):
                # An outline-only style (transparent fill) shows its stroke colour.
                colour = style.fill if parse_colour(style.fill)[3] > 0 else style.stroke
                return colours_for(SingleStyle(fill=colour), n=n)
            try:
                return colours_for(style, self._row_values(layer, style.field))
            except KeyError:
                return colours_for(SingleStyle(fill=getattr(style, "default", "#cccccc")), n=n)
        role = layer.role
        if role == "buildings":
            height = np.asarray(self._row_values(layer, "height_m"), dtype=float) \
                if layer.name in self._buildings else np.full(n, 10.0)
            hi = float(np.nanpercentile(height, 98)) if np.isfinite(height).any() else 30.0
            return ramp(height, BUILDING_RAMP, 3.0, max(hi, 20.0))
        if role == "roads" and "highway" in data.columns:
            return _by_key(data["highway"], ROAD_COLOURS, DEFAULT_FILL["roads"])
        if role == "landuse":
            return _by_key(_first_text_column(data, ("landuse", "leisure", "amenity")), LANDUSE_COLOURS,
                           DEFAULT_FILL["landuse"])
        if role == "natural":
            return _by_key(_first_text_column(data, ("natural", "landuse")), NATURAL_COLOURS,
                           DEFAULT_FILL["natural"])
        if role in ("pois", "shelters"):
            return _by_key(self._poi_kinds(layer), POI_COLOURS, DEFAULT_FILL[role])
        fill = DEFAULT_FILL.get(role)
        return colours_for(SingleStyle(fill=fill) if fill else layer.style, n=n)

    def _poi_kinds(self, layer: Layer) -> np.ndarray:
        spec = next((s for s in self.city.manifest.layers if s.name == layer.name), None)
        if spec is not None and spec.poi_kind:
            return np.full(len(layer.data), spec.poi_kind, dtype=object)
        if layer.role == "shelters":
            return np.full(len(layer.data), "shelter", dtype=object)
        from twin.city.pois import kinds_from_osm_tags

        return kinds_from_osm_tags(layer.data)

    def _landcover_layer(self) -> Layer | None:
        return next((lay for lay in self.city.one_map.tree if lay.role == "landcover"), None)

    def _visible(self, layer: Layer | None) -> bool:
        if layer is None:
            return True
        return any(v is layer for v in self.city.one_map.tree.visible_layers())

    def _terrain_colours(self, lm: LayerMesh) -> np.ndarray:
        """Per-point terrain colour: elevation tint (or the DEM layer's style), land cover
        blended in at its opacity when shown, times a hillshade."""
        mesh = lm.mesh
        elevation = np.asarray(mesh.point_data["elevation"], dtype=float)
        if lm.layer is not None and not is_default_style(lm.layer.style, lm.layer.role):
            style = lm.layer.style
            base = colours_for(style, elevation) if not isinstance(style, SingleStyle) else \
                colours_for(style, n=len(elevation))
        else:
            lo, hi = (np.percentile(elevation, [2, 98]) if len(elevation) else (0.0, 1.0))
            base = ramp(elevation, TERRAIN_RAMP, float(lo), float(hi))
        rgb = base[:, :3].astype(np.float32)
        cover_layer = self._landcover_layer()
        landcover = getattr(self.city, "landcover", None)
        dem = getattr(self.city, "dem", None)
        if cover_layer is not None and landcover is not None and dem is not None and landcover.shape == dem.shape \
                and self._visible(cover_layer) and cover_layer.opacity > 0:
            codes = np.asarray(landcover.values).ravel()[np.asarray(mesh.point_data["dem_cell"])]
            cover, known = self._landcover_colours(cover_layer, landcover, codes)
            alpha = cover_layer.opacity * cover[:, 3].astype(np.float32) / 255.0 * known
            rgb = rgb * (1 - alpha[:, None]) + cover[:, :3].astype(np.float32) * alpha[:, None]
        shade = np.asarray(mesh.point_data["hillshade"], dtype=np.float32)
        factor = np.clip(0.3 + 0.99 * shade, 0.3, 1.15)
        out = np.empty((len(rgb), 4), dtype=np.uint8)
        out[:, :3] = np.clip(rgb * factor[:, None], 0, 255).astype(np.uint8)
        out[:, 3] = 255
        return out

    def _landcover_colours(self, layer: Layer, grid: Grid, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colours of land cover codes and whether each code is a known class (not nodata)."""
        known = np.ones(len(codes), dtype=np.float32)
        if grid.nodata is not None:
            known[codes == grid.nodata] = 0
        if not is_default_style(layer.style, layer.role):
            style = layer.style
            colours = colours_for(style, codes) if not isinstance(style, SingleStyle) else \
                colours_for(style, n=len(codes))
            return colours, known
        mapping: dict = {}
        spec = next((s for s in self.city.manifest.layers if s.name == layer.name), None)
        if spec is not None and spec.classes:
            from twin.geo.landclass import load_value_mapping

            try:
                mapping = load_value_mapping(self.city.manifest.folder / spec.classes)
            except Exception:  # an unreadable table only loses the tint; the City reports it
                mapping = {}
        keys = pd.Series(codes).map(mapping)
        known[keys.isna().to_numpy()] = 0
        return _by_key(keys.to_numpy(dtype=object), LAND_CLASS_COLOURS, "#d8c8a8"), known

    def restyle(self, name: str) -> None:
        """Recompute a layer's colours from its (edited) style, in place, keeping the selection."""
        lm = self.layers.get(name)
        if lm is None:
            layer = self.city.one_map.tree.find(name)
            if layer is not None and layer.role == "landcover":
                self._refresh_terrain()
            return
        if lm.role == "dem":
            lm.base_rgba = self._terrain_colours(lm)
        elif lm.layer is not None:
            lm.base_rgba = self._row_colours(lm.layer)[lm.mesh.cell_data["feature"]]
        lm.style_key = self._style_key(lm.layer)
        self._paint(lm)

    def _refresh_terrain(self) -> None:
        terrain = next((lm for lm in self.layers.values() if lm.role == "dem"), None)
        if terrain is not None:
            terrain.base_rgba = self._terrain_colours(terrain)
            self._paint(terrain)

    # ------------------------------------------------------------------ selection and picking

    def _paint(self, lm: LayerMesh) -> None:
        """Write base colours, then the selection colour over selected features, into the live array."""
        rgba = lm.rgba
        rgba[:] = lm.base_rgba
        layer_name, rows = self._selected
        if layer_name == lm.name and len(rows) and lm.feature is not None and not lm.on_points:
            feature = np.asarray(lm.feature)
            size = max(int(feature.max(initial=-1)), int(rows.max())) + 1
            lut = np.zeros(size + 1, dtype=bool)
            lut[rows[rows >= 0]] = True
            rgba[lut[feature]] = _rgba(SELECTED_COLOUR)
        data = lm.mesh.point_data if lm.on_points else lm.mesh.cell_data
        data.GetArray("RGBA").Modified()
        lm.mesh.Modified()
        if lm.lod is not None:
            lod_data = _lod_data(lm)
            lod_data["RGBA"][:] = _lod_colours(lm, self.sun)
            lod_data.GetArray("RGBA").Modified()
            lm.lod.Modified()

    def set_sun(self, azimuth_deg: float, elevation_deg: float) -> None:
        """Follow the sun in the level-of-detail meshes' baked light (the lights themselves: :func:`set_sun`)."""
        self.sun = (float(azimuth_deg), float(elevation_deg))
        for lm in self.layers.values():
            if lm.lod is not None and not lm.on_points:  # the terrain's colours hold no sun
                self._paint(lm)

    def set_selection(self, layer_name: str, rows: Any) -> None:
        """Show ``rows`` (positions in the layer's data) of one layer as selected; an empty
        name or no rows clears it.  Only colour arrays change."""
        rows = np.unique(np.asarray(rows, dtype=np.int64).ravel())
        previous = self._selected[0]
        self._selected = (layer_name if len(rows) else "", rows)
        if previous and previous in self.layers and previous != layer_name:
            self._paint(self.layers[previous])
        if layer_name in self.layers:
            self._paint(self.layers[layer_name])

    def pick_feature(self, layer_name: str, cell_id: int) -> int | None:
        """Row of the layer's data under a picked cell; None for cells of no feature (terrain, ground)."""
        lm = self.layers.get(layer_name)
        feature = lm.feature if lm is not None else None
        if feature is None or not 0 <= cell_id < len(feature):
            return None
        row = int(feature[cell_id])
        return row if row >= 0 else None

    def layer_of_actor(self, actor: Any) -> str | None:
        """Name of the layer an actor (from :meth:`add_to_plotter`, full or level of detail) draws."""
        return next((name for actors in (self.actors, self.lod_actors) for name, a in actors.items()
                     if a is actor), None)

    # ------------------------------------------------------------------ plotting

    def add_to_plotter(self, plotter: pv.Plotter) -> dict[str, Any]:
        """One actor per layer mesh, coloured by its ``RGBA`` array; hidden layers are added hidden.

        Layers with a level-of-detail mesh get a second, hidden, unpickable actor
        for it (see :meth:`set_lod`).
        """
        self.actors = {}
        self.lod_actors = {}
        self.lod_active = False
        for lm in self.layers.values():
            self._add_actor(plotter, lm)
        return self.actors

    def _add_actor(self, plotter: pv.Plotter, lm: LayerMesh) -> None:
        """One actor for one layer mesh, drawn as its ``draw`` kind says."""
        if lm.mesh.n_cells == 0:
            return
        # No render per actor: the caller renders once when every layer is in (on a
        # software renderer each frame of a big terrain costs a few hundred ms).
        kwargs: dict[str, Any] = {"scalars": "RGBA", "rgba": True, "name": lm.name, "show_scalar_bar": False,
                                  "reset_camera": False, "render": False,
                                  "preference": "point" if lm.on_points else "cell"}
        if lm.draw == "surface":
            kwargs.update(ambient=SURFACE_AMBIENT, diffuse=SURFACE_DIFFUSE, specular=0.0)
        elif lm.draw == "flat":
            kwargs.update(lighting=False)
        elif lm.draw == "lines":
            kwargs.update(lighting=False, line_width=lm.line_width)
        elif lm.draw == "points":
            kwargs.update(render_points_as_spheres=True, point_size=lm.point_size, ambient=0.3)
        actor = plotter.add_mesh(lm.mesh, **kwargs)
        if lm.draw == "flat" and lm.role not in ("dem", "ground"):
            actor.mapper.SetResolveCoincidentTopologyToPolygonOffset()
            actor.mapper.SetRelativeCoincidentTopologyPolygonOffsetParameters(-1.0, -2.0)
        self.actors[lm.name] = actor
        if lm.lod is not None:
            # Unlit with the light baked into its colours (see _lod_colours): lighting
            # every fragment is most of a software renderer's time for a cheap mesh.
            lod_kwargs = {k: v for k, v in kwargs.items() if k not in ("ambient", "diffuse", "specular")}
            lod_actor = plotter.add_mesh(lm.lod, **{**lod_kwargs, "name": f"{lm.name} (moving)", "lighting": False})
            lod_actor.SetPickable(False)
            self.lod_actors[lm.name] = lod_actor
        self._light_for_shadows(lm.name)
        self._sync_actor(lm.name)

    def set_shadows(self, on: bool) -> None:
        """Make every actor able to take VTK's shadow-map pass (see :meth:`_light_for_shadows`)."""
        self.shadows = bool(on)
        for name in self.actors:
            self._light_for_shadows(name)

    def _light_for_shadows(self, name: str) -> None:
        """Light a layer's unlit actors while shadows are on, and unlight them after.

        VTK's shadow pass adds ``calcShadow(vertexVC, ...)`` to every fragment
        shader, but the mapper declares ``vertexVC`` only for lit primitives:
        unlit polygons and plain lines then fail to compile and draw wrongly.
        So with shadows flat layers are lit (they receive the shadows), lines
        (of line layers and of areas' outlines) are drawn as lit tubes, line
        layers with ambient light only (they look as before),
        and the unlit level of detail takes ambient light only; without
        shadows they go back to unlit, which is much cheaper to draw.
        """
        lm = self.layers[name]
        shaded = {"flat": (SHADOWED_FLAT_AMBIENT, SHADOWED_FLAT_DIFFUSE), "lines": (1.0, 0.0)}
        unlit = [(self.actors.get(name), *shaded[lm.draw])] if lm.draw in shaded else []
        unlit.append((self.lod_actors.get(name), 1.0, 0.0))
        for actor, ambient, diffuse in unlit:
            if actor is None:
                continue
            prop = actor.GetProperty()
            prop.SetLighting(self.shadows)
            tubes = self.shadows and actor is self.actors.get(name) and lm.mesh.n_lines > 0
            prop.SetRenderLinesAsTubes(tubes)
            # VTK draws tubes only for lines wider than one pixel.
            prop.SetLineWidth(lm.line_width if tubes or lm.draw == "lines" else 1.0)
            prop.SetAmbient(ambient if self.shadows else 0.0)
            prop.SetDiffuse(diffuse if self.shadows else 1.0)

    def _sync_actor(self, name: str) -> None:
        """Visibility and opacity of a layer's actors; the level of detail replaces the
        full mesh while :attr:`lod_active`.  Opaque closed prisms cull their back faces
        (unseen anyway), which spares the rasteriser about half the walls."""
        lm, actor = self.layers[name], self.actors.get(name)
        if actor is None:
            return
        visible = self._visible(lm.layer)
        opacity = lm.layer.opacity if lm.layer is not None else 1.0
        lod_actor = self.lod_actors.get(name)
        actor.SetVisibility(visible and not (self.lod_active and lod_actor is not None))
        for a in (actor, lod_actor):
            if a is not None:
                a.GetProperty().SetOpacity(opacity)
                a.GetProperty().SetBackfaceCulling(lm.closed and opacity >= 1.0)
        if lod_actor is not None:
            lod_actor.SetVisibility(visible and self.lod_active)

    def set_lod(self, active: bool) -> bool:
        """Draw the cheap level-of-detail meshes (while the camera moves) or the full ones.

        Returns whether anything changed, so callers render only when needed.
        """
        if active == self.lod_active:
            return False
        self.lod_active = active
        for name in self.lod_actors:
            self._sync_actor(name)
        return bool(self.lod_actors)

    def sync_layer(self, plotter: pv.Plotter | None, layer: Layer) -> None:
        """Follow a layer's visibility, opacity and style on its existing actor (no rebuild).

        Land cover has no actor of its own: it tints the terrain's colours.
        """
        if layer.role == "landcover":
            self._refresh_terrain()
        lm = self.layers.get(layer.name)
        if lm is not None:
            if self._style_key(layer) != lm.style_key:
                self.restyle(layer.name)
            self._sync_actor(layer.name)
        if plotter is not None:
            plotter.render()

    def sync_all(self, plotter: pv.Plotter | None = None) -> None:
        """Follow every layer (e.g. after a group was hidden)."""
        for layer in self.city.one_map.tree:
            self.sync_layer(None, layer)
        if plotter is not None:
            plotter.render()

    # ------------------------------------------------------------------ camera

    def ground_z(self) -> float:
        """Typical ground height in scene units (median terrain, or 0 when flat)."""
        if self.surface is None:
            return 0.0
        return float(np.median(self.surface.values[self.surface.valid])) * self.z_scale \
            if self.surface.valid.any() else 0.0

    def top_z(self) -> float:
        """Height (scene units) of the tallest building roof above the typical ground."""
        lm = next((lm for lm in self.layers.values() if lm.role == "buildings"), None)
        if lm is None or lm.mesh.n_points == 0:
            return 0.0
        return max(0.0, float(np.percentile(lm.mesh.points[:, 2], 99.9)) - self.ground_z())

    def focus_point(self) -> tuple[float, float, float]:
        """Centre of the city's extent at ground height: where the default camera looks."""
        xmin, ymin, xmax, ymax = self.city.extent()
        return ((xmin + xmax) / 2, (ymin + ymax) / 2, self.ground_z())

    def default_camera(self, aspect: float = 1.6, **kwargs: Any) -> list[tuple[float, float, float]]:
        """The oblique default view (from the south, 45° down) of the whole city."""
        return camera_for_extent(self.city.extent(), z=self.ground_z(), top=self.top_z(), aspect=aspect, **kwargs)

    def reset_camera(self, plotter: pv.Plotter, **kwargs: Any) -> None:
        """Put the plotter's camera on the default view (without rendering: the renderer's
        camera, not the plotter's, which first resets and renders a camera never set)."""
        width, height = plotter.window_size
        renderer = plotter.renderer
        renderer.camera.view_angle = kwargs.get("view_angle_deg", 30.0)
        renderer.camera_position = self.default_camera(aspect=width / max(height, 1), **kwargs)
        renderer.ResetCameraClippingRange()


def _lod_data(lm: LayerMesh) -> Any:
    """The level-of-detail mesh's point or cell data, whichever holds its colours."""
    return lm.lod.point_data if lm.on_points else lm.lod.cell_data


def _lod_colours(lm: LayerMesh, sun: tuple[float, float]) -> np.ndarray:
    """Colours of the level-of-detail cells: the live colour of the feature each stands
    for, times the light the full mesh gets there from the sun and the fill light.

    The terrain (coloured per point, unlit, its hillshade already in its
    colours) takes the live colour of the full mesh's point at each of its points.
    """
    if lm.on_points:
        return np.asarray(lm.rgba)[np.asarray(lm.lod.point_data["full_point"])]
    feature = np.asarray(lm.mesh.cell_data["feature"])
    lod_feature = np.asarray(lm.lod.cell_data["feature"])
    table = np.zeros((max(int(feature.max(initial=-1)), int(lod_feature.max(initial=-1))) + 1, 4), np.uint8)
    table[feature] = lm.rgba
    colours = table[lod_feature]
    facing = np.clip(np.asarray(lm.lod.cell_data["Normals"], dtype=float) @ sun_direction(*sun), 0.0, 1.0)
    light = SURFACE_AMBIENT + SURFACE_DIFFUSE * (SUN_INTENSITY * facing + FILL_INTENSITY * _FILL_COSINE)
    colours[:, :3] = np.clip(colours[:, :3] * np.minimum(light, 1.0)[:, None], 0, 255).astype(np.uint8)
    return colours


def sun_direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector pointing from the ground towards the sun.

    Azimuth is clockwise from north (the project CRS's y axis), elevation above
    the horizon; e.g. (135, 35) is a mid-morning sun in the south-east.
    """
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])


def set_sun(plotter: pv.Plotter, scene: "CityScene", azimuth_deg: float, elevation_deg: float, *,
            shadows: bool = False) -> pv.Light:
    """Light the scene with one directional sun (plus a soft fill), optionally casting shadows.

    Shadows use VTK's shadow-map pass; on a software renderer they cost a lot
    of frame time, so they are off unless asked for.
    """
    if not 0.0 < elevation_deg <= 90.0:
        raise ValueError("the sun's elevation must be in (0, 90] degrees")
    focal = np.array(scene.focus_point())
    xmin, ymin, xmax, ymax = scene.city.extent()
    distance = 4.0 * max(xmax - xmin, ymax - ymin, 1.0)
    sun = pv.Light(position=tuple(focal + distance * sun_direction(azimuth_deg, elevation_deg)),
                   focal_point=tuple(focal), light_type="scene light", intensity=SUN_INTENSITY)
    sun.positional = False
    fill = pv.Light(light_type="headlight", intensity=FILL_INTENSITY)
    plotter.remove_all_lights()
    plotter.add_light(sun)
    plotter.add_light(fill)
    scene.set_sun(azimuth_deg, elevation_deg)
    scene.set_shadows(shadows)
    if shadows:
        plotter.enable_shadows()
    else:
        plotter.disable_shadows()
    return sun
