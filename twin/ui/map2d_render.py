"""What the 2D map draws, worked out without Qt.

The canvas (:mod:`twin.ui.map2d`) only turns these arrays into Qt objects and
paints them.  Here live the view maths, layer geometry as flat path-element
arrays (in the binary layout ``QDataStream`` reads a ``QPainterPath`` from, so
thousands of polygons become a path without a Python loop), wide lines and
markers as filled shapes (Qt's antialiased stroker is far slower), symbols per
layer role and style, raster colours (hillshaded terrain, land classes), legend
entries, hit testing and scale-bar lengths.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from twin.errors import TwinError
from twin.geo.landclass import classify_features, load_land_classes, load_tag_mapping, load_value_mapping
from twin.geo.raster import Grid
from twin.geo.role_styles import default_style
from twin.geo.style import (
    CategorisedStyle,
    GraduatedStyle,
    SingleStyle,
    Style,
    colours_for,
    parse_colour,
    ramp_colours,
    style_to_dict,
)

RGBA = tuple[int, int, int, int]

BACKGROUND: RGBA = (246, 245, 241, 255)
HIGHLIGHT_FILL: RGBA = (255, 238, 0, 215)
HIGHLIGHT_STROKE: RGBA = (214, 150, 0, 255)
#: Zoom limits in screen pixels per metre (a continent .. a doorstep).
MIN_SCALE, MAX_SCALE = 1e-5, 200.0

# ----------------------------------------------------------------------------- view


def _clamp_scale(scale: float) -> float:
    return float(min(max(scale, MIN_SCALE), MAX_SCALE))


@dataclass(frozen=True)
class View:
    """What the canvas shows: a centre in map units, a scale (pixels per metre) and a pixel size.

    Screen y grows downwards, map y northwards; only this transform changes when
    the user pans or zooms, so layer geometry is prepared once.
    """

    cx: float
    cy: float
    scale: float
    width: int
    height: int

    @classmethod
    def fit(cls, extent: tuple[float, float, float, float], width: int, height: int,
            margin: float = 0.03) -> "View":
        """The view showing ``extent`` whole and centred, with a small margin."""
        xmin, ymin, xmax, ymax = (float(v) for v in extent)
        width, height = max(int(width), 1), max(int(height), 1)
        span_x, span_y = max(xmax - xmin, 1e-6), max(ymax - ymin, 1e-6)
        scale = min(width / span_x, height / span_y) * (1.0 - 2.0 * margin)
        return cls((xmin + xmax) / 2.0, (ymin + ymax) / 2.0, _clamp_scale(scale), width, height)

    @property
    def metres_per_pixel(self) -> float:
        return 1.0 / self.scale

    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the map area on screen."""
        hw, hh = self.width / 2.0 / self.scale, self.height / 2.0 / self.scale
        return self.cx - hw, self.cy - hh, self.cx + hw, self.cy + hh

    def to_screen(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Screen pixel position of map coordinates (scalars or arrays)."""
        return ((x - self.cx) * self.scale + self.width / 2.0,
                self.height / 2.0 - (y - self.cy) * self.scale)

    def to_map(self, sx: Any, sy: Any) -> tuple[Any, Any]:
        """Map coordinates under a screen pixel position."""
        return (self.cx + (sx - self.width / 2.0) / self.scale,
                self.cy - (sy - self.height / 2.0) / self.scale)

    def zoomed(self, factor: float, sx: float | None = None, sy: float | None = None) -> "View":
        """Zoom in (factor > 1) or out keeping the map point under (sx, sy) in place."""
        sx = self.width / 2.0 if sx is None else sx
        sy = self.height / 2.0 if sy is None else sy
        x, y = self.to_map(sx, sy)
        scale = _clamp_scale(self.scale * factor)
        return replace(self, scale=scale, cx=x - (sx - self.width / 2.0) / scale,
                       cy=y + (sy - self.height / 2.0) / scale)

    def panned(self, dx: float, dy: float) -> "View":
        """The view after dragging the map by (dx, dy) screen pixels."""
        return replace(self, cx=self.cx - dx / self.scale, cy=self.cy + dy / self.scale)

    def centred_on(self, x: float, y: float) -> "View":
        return replace(self, cx=float(x), cy=float(y))

    def resized(self, width: int, height: int) -> "View":
        return replace(self, width=max(int(width), 1), height=max(int(height), 1))

    def transform(self, ox: float = 0.0, oy: float = 0.0) -> tuple[float, float, float, float, float, float]:
        """(m11, m12, m21, m22, dx, dy) from coordinates relative to (ox, oy) to screen pixels."""
        s = self.scale
        return (s, 0.0, 0.0, -s, s * (ox - self.cx) + self.width / 2.0, s * (self.cy - oy) + self.height / 2.0)

    def grid_transform(self, affine: Any) -> tuple[float, float, float, float, float, float]:
        """(m11, m12, m21, m22, dx, dy) from a grid's (col, row) to screen pixels."""
        s = self.scale
        return (s * affine.a, -s * affine.d, s * affine.b, -s * affine.e,
                s * (affine.c - self.cx) + self.width / 2.0, -s * (affine.f - self.cy) + self.height / 2.0)

    def mapped_rect(self, other: "View") -> tuple[float, float, float, float]:
        """Where the screen of ``other`` lands on this view (x, y, w, h): to reuse an image while zooming."""
        x0, y0 = other.to_map(0.0, 0.0)
        sx, sy = self.to_screen(x0, y0)
        k = self.scale / other.scale
        return sx, sy, other.width * k, other.height * k


def scale_bar_length(metres_per_pixel: float, max_px: float = 160.0) -> float:
    """The longest round length (1, 2 or 5 times a power of ten, in metres) that fits in ``max_px``."""
    limit = max(max_px * metres_per_pixel, 1e-9)
    power = 10.0 ** math.floor(math.log10(limit))
    for step in (5.0, 2.0, 1.0):
        if step * power <= limit * (1 + 1e-9):
            return step * power
    return power


def format_length(metres: float) -> str:
    """``500 m``, ``1 km``, ``20 km`` for a scale bar."""
    if metres >= 1000.0:
        return f"{metres / 1000.0:g} km"
    return f"{metres:g} m"


class LonLat:
    """Project CRS to longitude/latitude, with the transformer built once."""

    def __init__(self, crs: CRS) -> None:
        self._transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        lon, lat = self._transformer.transform(x, y)
        return float(lon), float(lat)


# ----------------------------------------------------------------------------- geometry

#: One ``QPainterPath`` element as ``QDataStream`` stores it: type, x, y (big-endian).
PATH_RECORD = np.dtype([("type", ">i4"), ("x", ">f8"), ("y", ">f8")])
MOVE_TO, LINE_TO = 0, 1
WINDING_FILL = 1


@dataclass
class PathParts:
    """Path elements of many features, in feature order, with the feature row of each element."""

    records: np.ndarray
    rows: np.ndarray

    @classmethod
    def empty(cls) -> "PathParts":
        return cls(np.empty(0, dtype=PATH_RECORD), np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.records)

    def take(self, chosen: np.ndarray) -> np.ndarray:
        """Elements of the features where ``chosen`` (a boolean per row) is true."""
        if not len(self.records):
            return self.records
        return self.records[chosen[self.rows]]

    def split(self, group_of_row: np.ndarray, n_groups: int) -> list[np.ndarray]:
        """Elements per group (whole features stay together, so each group starts with a move-to)."""
        if not len(self.records):
            return [self.records[:0] for _ in range(n_groups)]
        keys = group_of_row[self.rows]
        order = np.argsort(keys, kind="stable")
        bounds = np.searchsorted(keys[order], np.arange(n_groups + 1))
        ordered = self.records[order]
        return [ordered[bounds[i]:bounds[i + 1]] for i in range(n_groups)]


def path_bytes(records: np.ndarray, fill_rule: int = WINDING_FILL) -> bytes:
    """The ``QDataStream`` form of a ``QPainterPath`` made of these elements."""
    head = np.array([len(records)], dtype=">i4").tobytes()
    tail = np.array([0, fill_rule], dtype=">i4").tobytes()
    return head + np.ascontiguousarray(records, dtype=PATH_RECORD).tobytes() + tail


def _records(geoms: np.ndarray, rows: np.ndarray, origin: tuple[float, float]) -> PathParts:
    """Path elements of rings or line strings: a move-to at each start, line-tos after."""
    if not len(geoms):
        return PathParts.empty()
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    starts = np.ones(len(index), dtype=bool)
    starts[1:] = index[1:] != index[:-1]
    records = np.empty(len(coords), dtype=PATH_RECORD)
    records["type"] = np.where(starts, MOVE_TO, LINE_TO)
    records["x"] = coords[:, 0] - origin[0]
    records["y"] = coords[:, 1] - origin[1]
    return PathParts(records, rows[index])


def _spread_bits(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.uint64) & np.uint64(0xFFFF)
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _spatially_ordered(parts: PathParts) -> PathParts:
    """The same features reordered along a Z-order curve, so that a run of elements covers a compact area
    (Qt rasterises a path over its bounding box: compact pieces draw much faster)."""
    if not len(parts.records):
        return parts
    rows, first = np.unique(parts.rows, return_index=True)
    x, y = parts.records["x"][first].astype(float), parts.records["y"][first].astype(float)
    span = max(float(np.ptp(x)), float(np.ptp(y)), 1e-9)
    cx = np.floor((x - x.min()) / span * 4095.0)
    cy = np.floor((y - y.min()) / span * 4095.0)
    key_of_row = np.zeros(int(rows.max()) + 1, dtype=np.uint64)
    key_of_row[rows] = _spread_bits(cx) | (_spread_bits(cy) << np.uint64(1))
    order = np.argsort(key_of_row[parts.rows], kind="stable")
    return PathParts(parts.records[order], parts.rows[order])


@dataclass
class LayerShapes:
    """A vector layer's geometry prepared once: path elements relative to ``origin``, marker points and
    the geometries to hit-test (in map coordinates), with a spatial index built on first use."""

    origin: tuple[float, float]
    count: int
    polygons: PathParts
    lines: PathParts
    points: np.ndarray
    point_rows: np.ndarray
    hit_geometries: np.ndarray
    _tree: shapely.STRtree | None = field(default=None, repr=False)

    @property
    def tree(self) -> shapely.STRtree:
        if self._tree is None:
            self._tree = shapely.STRtree(self.hit_geometries)
        return self._tree

    def bounds(self) -> tuple[float, float, float, float] | None:
        """Extent of the drawn geometry, or None when there is nothing."""
        valid = self.hit_geometries[~shapely.is_missing(self.hit_geometries)]
        valid = valid[~shapely.is_empty(valid)]
        if not len(valid):
            return None
        return tuple(float(v) for v in shapely.total_bounds(valid))  # type: ignore[return-value]


def layer_shapes(geometries: Any, origin: tuple[float, float], as_markers: bool = False) -> LayerShapes:
    """Flatten a layer's geometries into path elements (polygon rings oriented for winding fill,
    so holes stay open and overlapping features stay filled) and marker points.

    ``as_markers`` draws every feature as one marker at a point on its surface
    (points of interest, which are a mix of nodes and building outlines).
    """
    geoms = np.asarray(geometries, dtype=object)
    n = len(geoms)
    if as_markers:
        points = shapely.point_on_surface(geoms)
        usable = ~shapely.is_missing(points) & ~shapely.is_empty(points)
        xy = shapely.get_coordinates(points[usable]) - np.asarray(origin)
        return LayerShapes(origin, n, PathParts.empty(), PathParts.empty(), xy, np.flatnonzero(usable), points)
    parts, part_rows = shapely.get_parts(geoms, return_index=True)
    types = shapely.get_type_id(parts)
    polygon = types == 3
    rings, ring_part = shapely.get_rings(shapely.orient_polygons(parts[polygon]), return_index=True)
    polygons = _spatially_ordered(_records(rings, part_rows[polygon][ring_part], origin))
    line = (types == 1) | (types == 2)
    lines = _spatially_ordered(_records(parts[line], part_rows[line], origin))
    point = (types == 0) & ~shapely.is_empty(parts)
    xy = shapely.get_coordinates(parts[point]) - np.asarray(origin)
    return LayerShapes(origin, n, polygons, lines, xy, part_rows[point], geoms)


def hit_row(shapes: LayerShapes, x: float, y: float, tolerance: float, filled: bool = True) -> int | None:
    """Row of the feature under (x, y): inside a filled polygon, or within ``tolerance`` (map units)
    of a line, point or polygon outline.  The nearest wins; among polygons the smallest (drawn
    features nested in bigger ones stay reachable)."""
    probe = shapely.box(x - tolerance, y - tolerance, x + tolerance, y + tolerance)
    found = shapes.tree.query(probe)
    if not len(found):
        return None
    geoms = shapes.hit_geometries[found]
    if not filled:
        polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
        geoms = np.where(polygonal, shapely.boundary(geoms), geoms)
    distance = shapely.distance(geoms, shapely.Point(x, y))
    near = distance <= tolerance
    if not near.any():
        return None
    found, distance, geoms = found[near], distance[near], geoms[near]
    best = np.lexsort((-found, shapely.area(geoms), np.round(distance, 6)))[0]
    return int(found[best])


def rows_in_box(shapes: LayerShapes, box: tuple[float, float, float, float]) -> np.ndarray:
    """Rows of the features touching a map rectangle (xmin, ymin, xmax, ymax), sorted."""
    found = shapes.tree.query(shapely.box(*box), predicate="intersects")
    return np.unique(np.asarray(found, dtype=np.int64))


def attributes(frame: pd.DataFrame, row: int) -> dict[str, Any]:
    """A feature's non-empty attributes as plain Python values (no geometry)."""
    geometry = getattr(frame, "_geometry_column_name", None)
    out: dict[str, Any] = {}
    for key, value in frame.iloc[int(row)].items():
        if key == geometry or value is None:
            continue
        if isinstance(value, (float, np.floating)) and math.isnan(value):
            continue
        if value is pd.NA or value is pd.NaT:
            continue
        out[str(key)] = value.item() if isinstance(value, np.generic) else value
    return out


# ----------------------------------------------------------------------------- symbols


def split_subpaths(records: np.ndarray, max_elements: int = 400) -> list[np.ndarray]:
    """Cut path elements into pieces of about ``max_elements``, at subpath starts.

    Qt's antialiasing rasteriser slows down sharply on one path of many
    thousand elements; a few hundred per path keeps it fast.
    """
    if len(records) <= max_elements:
        return [records] if len(records) else []
    starts = np.flatnonzero(records["type"] == MOVE_TO)
    at = np.searchsorted(starts, np.arange(0, len(records), max_elements))
    cuts = np.unique(starts[at[at < len(starts)]])
    cuts = np.append(cuts[cuts > 0], len(records))
    pieces, begin = [], 0
    for end in cuts:
        if end > begin:
            pieces.append(records[begin:end])
            begin = end
    return pieces


#: Lines wider than this (pixels) get round ends and are cut to the area around the view.
ROUND_JOIN_PX = 3.0
#: Longest miter (in half widths) before a sharp corner is cut.
MITER_LIMIT = 2.0


def stroke_records(records: np.ndarray, half_width: float, round_ends: bool = False,
                   box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Wide lines as filled path elements: each polyline becomes one polygon, its left side offset forward
    and its right side back, with mitred joins (much faster than Qt's stroker for thousands of
    antialiased lines).  Ends are square, or round (with discs also at corners sharper than a right
    angle) when ``round_ends``.  ``box`` (xmin, ymin, xmax, ymax) keeps the polylines near it.

    Every polygon winds the same way, so under the winding fill rule overlaps stay filled.
    """
    x = records["x"].astype(float)
    y = records["y"].astype(float)
    kind = records["type"]
    repeat = np.zeros(len(x), dtype=bool)
    repeat[1:] = (x[1:] == x[:-1]) & (y[1:] == y[:-1]) & (kind[1:] == LINE_TO)
    x, y, kind = x[~repeat], y[~repeat], kind[~repeat]
    if len(x) < 2:
        return np.empty(0, dtype=PATH_RECORD)
    starts = np.flatnonzero(kind == MOVE_TO)
    if not len(starts) or starts[0] != 0:
        starts = np.r_[0, starts]
    counts = np.diff(np.r_[starts, len(x)])
    keep = counts >= 2
    if box is not None:
        h = half_width
        keep &= (np.maximum.reduceat(x, starts) >= box[0] - h) & (np.minimum.reduceat(x, starts) <= box[2] + h) \
            & (np.maximum.reduceat(y, starts) >= box[1] - h) & (np.minimum.reduceat(y, starts) <= box[3] + h)
    if not keep.any():
        return np.empty(0, dtype=PATH_RECORD)
    chosen = np.repeat(keep, counts)
    x, y, counts = x[chosen], y[chosen], counts[keep]
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    lasts = starts + counts - 1
    n = len(x)
    is_start = np.zeros(n, dtype=bool)
    is_start[starts] = True
    is_last = np.zeros(n, dtype=bool)
    is_last[lasts] = True

    dx, dy = np.diff(x), np.diff(y)
    length = np.hypot(dx, dy)
    length[length == 0] = 1.0
    sx, sy = np.append(dx / length, 0.0), np.append(dy / length, 0.0)  # segment from each vertex
    out_x, out_y = sx.copy(), sy.copy()
    out_x[lasts], out_y[lasts] = sx[lasts - 1], sy[lasts - 1]
    in_x, in_y = np.roll(sx, 1), np.roll(sy, 1)
    in_x[starts], in_y[starts] = sx[starts], sy[starts]
    closed = (x[starts] == x[lasts]) & (y[starts] == y[lasts]) & (counts > 2)
    cs, cl = starts[closed], lasts[closed]
    in_x[cs], in_y[cs] = sx[cl - 1], sy[cl - 1]
    out_x[cl], out_y[cl] = sx[cs], sy[cs]

    # Left normals of the incoming and outgoing segments; the miter halfway between them.
    mx, my = -(in_y + out_y), in_x + out_x
    norm = np.hypot(mx, my)
    straight_back = norm < 1e-9
    mx[straight_back], my[straight_back] = -out_y[straight_back], out_x[straight_back]
    norm[straight_back] = 1.0
    mx, my = mx / norm, my / norm
    cos_half = mx * -out_y + my * out_x
    reach = half_width / np.maximum(cos_half, 1.0 / MITER_LIMIT)
    left_x, left_y = x + mx * reach, y + my * reach
    right_x, right_y = x - mx * reach, y - my * reach
    if not round_ends:
        open_start, open_last = starts[~closed], lasts[~closed]
        for xs, ys, at, sign, ux, uy in ((left_x, left_y, open_start, -1.0, out_x, out_y),
                                         (right_x, right_y, open_start, -1.0, out_x, out_y),
                                         (left_x, left_y, open_last, 1.0, in_x, in_y),
                                         (right_x, right_y, open_last, 1.0, in_x, in_y)):
            xs[at] += sign * ux[at] * half_width
            ys[at] += sign * uy[at] * half_width

    # One polygon per polyline: left side forward, right side back, closed on its first point.
    sizes = 2 * counts + 1
    total = int(sizes.sum())
    owner = np.repeat(np.arange(len(counts)), sizes)
    k = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    c = counts[owner]
    first = starts[owner]
    on_left = (k < c) | (k == 2 * c)
    vertex = np.where(k < c, first + k, np.where(k < 2 * c, first + c - 1 - (k - c), first))
    out = np.empty(total, dtype=PATH_RECORD)
    out["type"] = np.where(k == 0, MOVE_TO, LINE_TO)
    out["x"] = np.where(on_left, left_x[vertex], right_x[vertex])
    out["y"] = np.where(on_left, left_y[vertex], right_y[vertex])
    if not round_ends:
        return out
    sharp = (in_x * out_x + in_y * out_y) < 0.0
    ends = np.flatnonzero(((is_start | is_last) & ~np.repeat(closed, counts)) | sharp)
    discs = disc_records(np.column_stack([x[ends], y[ends]]), half_width, sides=16, clockwise=True)
    return np.concatenate([out, discs])


def disc_records(xy: np.ndarray, radius: float, sides: int = 16, clockwise: bool = False) -> np.ndarray:
    """Round markers as filled path elements (a polygon of ``sides`` per point)."""
    if not len(xy):
        return np.empty(0, dtype=PATH_RECORD)
    angle = np.linspace(0.0, -2.0 * np.pi if clockwise else 2.0 * np.pi, sides + 1)
    out = np.empty((len(xy), sides + 1), dtype=PATH_RECORD)
    out["type"] = LINE_TO
    out["type"][:, 0] = MOVE_TO
    out["x"] = xy[:, :1] + radius * np.cos(angle)[None, :]
    out["y"] = xy[:, 1:2] + radius * np.sin(angle)[None, :]
    return out.ravel()


@dataclass
class Shape:
    """One thing to paint: a filled path, or (``thin_px`` > 0) a path stroked by a thin cosmetic pen."""

    records: np.ndarray
    colour: RGBA
    thin_px: float = 0.0


def _thin(colour: RGBA, width_px: float) -> tuple[RGBA, float]:
    """Lines under a pixel wide are drawn one pixel wide and fainter, which reads the same."""
    if width_px >= 1.0:
        return colour, width_px
    return (*colour[:3], max(1, round(colour[3] * width_px))), 1.0  # type: ignore[return-value]


@dataclass
class FillGroup:
    """Polygons sharing one fill (None: outline only) and outline (``stroke_px`` screen pixels)."""

    records: np.ndarray
    fill: RGBA | None
    stroke: RGBA | None
    stroke_px: float


@dataclass
class LineGroup:
    """Lines of one colour, ``width_px`` wide or ``width_m`` once that is wider on screen, with an optional
    casing ``casing_px`` wider on each side."""

    records: np.ndarray
    colour: RGBA
    width_px: float
    width_m: float = 0.0
    casing: RGBA | None = None
    casing_px: float = 0.0

    def width_at(self, scale: float) -> float:
        return max(self.width_px, self.width_m * scale)


@dataclass
class MarkerGroup:
    """Round markers of one colour, ``size_px`` across, with an optional halo ``outline_px`` wide."""

    xy: np.ndarray
    colour: RGBA
    size_px: float
    outline: RGBA | None = None
    outline_px: float = 1.5


@dataclass
class LegendEntry:
    """One legend row: a swatch (``fill``, ``line``, ``marker`` or ``ramp``) and its label."""

    label: str
    shape: str
    colour: RGBA
    outline: RGBA | None = None
    ramp: list[RGBA] | None = None


@dataclass
class VectorPaint:
    """How to draw a vector layer, bottom first: fills, then lines, then markers."""

    fills: list[FillGroup]
    lines: list[LineGroup]
    markers: list[MarkerGroup]
    legend: list[LegendEntry]
    filled: bool = True

    def fixed_shapes(self) -> list[Shape]:
        """What looks the same at every scale: fills with their thin outlines (built once)."""
        out = []
        for group in self.fills:
            if group.fill is not None:
                out.append(Shape(group.records, group.fill))
            if group.stroke is not None and 0.0 < group.stroke_px <= 1.0:
                colour, width = _thin(group.stroke, group.stroke_px)
                out.append(Shape(group.records, colour, width))
        return out

    def widest_px(self, scale: float) -> float:
        """The widest outline or line at this scale, in pixels (with casings)."""
        widths = [g.stroke_px for g in self.fills if g.stroke is not None]
        widths += [g.width_at(scale) + 2.0 * g.casing_px for g in self.lines]
        return max(widths + [0.0])

    def scaled_shapes(self, scale: float, box: tuple[float, float, float, float] | None = None) -> list[Shape]:
        """Symbols sized in screen pixels (wide outlines, lines, markers) at ``scale`` pixels per map unit,
        as shapes in map units, drawn after :meth:`fixed_shapes`; ``box`` limits wide lines to an area."""
        out = []

        def wide(records: np.ndarray, width_px: float) -> np.ndarray:
            return stroke_records(records, width_px / 2.0 / scale, width_px > ROUND_JOIN_PX, box)

        for group in self.fills:
            if group.stroke is not None and group.stroke_px > 1.0:
                out.append(Shape(wide(group.records, group.stroke_px), group.stroke))
        for group in self.lines:
            if group.casing is not None and group.casing_px > 0:
                out.append(Shape(wide(group.records, group.width_at(scale) + 2.0 * group.casing_px), group.casing))
        for group in self.lines:
            width = group.width_at(scale)
            if width <= 1.0 and group.casing is None:
                colour, thin = _thin(group.colour, width)
                out.append(Shape(group.records, colour, thin))
            else:
                out.append(Shape(wide(group.records, width), group.colour))
        for group in self.markers:
            if group.outline is not None and group.outline_px > 0:
                out.append(Shape(disc_records(group.xy, (group.size_px / 2.0 + group.outline_px) / scale),
                                 group.outline))
            out.append(Shape(disc_records(group.xy, group.size_px / 2.0 / scale), group.colour))
        return out

    def pick_px(self, scale: float) -> float:
        """Half the widest line or marker at this scale (pixels): how near a click must come."""
        widest = max([g.size_px + 2 * g.outline_px for g in self.markers]
                     + [g.width_at(scale) + 2 * g.casing_px for g in self.lines] + [0.0])
        return widest / 2.0 + 1.0


Area = tuple[float, float, float, float]


def needed_area(paint: VectorPaint, view: View, origin: tuple[float, float]) -> Area | None:
    """The part of the map (relative to ``origin``) whose wide lines must be built for this view, or None
    when lines are thin enough to build whole (cheap, and reusable while panning)."""
    if paint.widest_px(view.scale) <= ROUND_JOIN_PX:
        return None
    xmin, ymin, xmax, ymax = view.extent()
    return xmin - origin[0], ymin - origin[1], xmax - origin[0], ymax - origin[1]


def build_area(paint: VectorPaint, view: View, origin: tuple[float, float]) -> Area | None:
    """:func:`needed_area` with a view's size of margin all round, so short pans reuse what was built."""
    area = needed_area(paint, view, origin)
    if area is None:
        return None
    w, h = area[2] - area[0], area[3] - area[1]
    return area[0] - w, area[1] - h, area[2] + w, area[3] + h


def area_covers(built: Area | None, needed: Area | None) -> bool:
    """True when shapes built for ``built`` (None: everything) serve a view needing ``needed``."""
    if built is None:
        return needed is None
    return needed is not None and built[0] <= needed[0] and built[1] <= needed[1] \
        and built[2] >= needed[2] and built[3] >= needed[3]


@dataclass
class RasterPaint:
    """A grid's colours, ``(rows, cols, 4)`` uint8 RGBA, row 0 north; nodata is transparent."""

    rgba: np.ndarray
    legend: list[LegendEntry]


def highlight_paint(shapes: LayerShapes, rows: np.ndarray, symbol_px: float) -> VectorPaint:
    """The selected features in the highlight colours, drawn over the map."""
    chosen = np.zeros(shapes.count, dtype=bool)
    rows = np.asarray(rows, dtype=np.int64)
    chosen[rows[(rows >= 0) & (rows < shapes.count)]] = True
    polygons, lines = shapes.polygons.take(chosen), shapes.lines.take(chosen)
    points = shapes.points[chosen[shapes.point_rows]] if len(shapes.points) else shapes.points
    solid = (*HIGHLIGHT_FILL[:3], 255)
    fills = [FillGroup(polygons, HIGHLIGHT_FILL, HIGHLIGHT_STROKE, 2.0)] if len(polygons) else []
    line_px = max(symbol_px, 3.0)
    strokes = [LineGroup(lines, solid, line_px, 0.0, HIGHLIGHT_STROKE, 1.5)] if len(lines) else []
    markers = [MarkerGroup(points, solid, max(symbol_px, 8.0) + 3.0, HIGHLIGHT_STROKE, 2.0)] if len(points) else []
    return VectorPaint(fills, strokes, markers, [])


# ----------------------------------------------------------------------------- styles

def is_default_style(style: Style | None) -> bool:
    """True for no style or an untouched single style."""
    return style is None or (isinstance(style, SingleStyle) and style_to_dict(style) == style_to_dict(SingleStyle()))


#: Roles whose starting style is plainer than what the map can draw from the data itself
#: (land classes from tags, point kinds from several tags, shaded terrain, class tables).
CARTOGRAPHY_ROLES = frozenset({"landuse", "natural", "pois", "shelters", "dem", "landcover", "rain_zones"})


def uses_role_cartography(role: str, style: Style | None) -> bool:
    """True while a layer keeps the style it started with and its role has richer map symbols."""
    if is_default_style(style):
        return True
    return role in CARTOGRAPHY_ROLES and style_to_dict(style) == style_to_dict(default_style(role))


def _rgba(colour: str | RGBA | np.ndarray) -> RGBA:
    if isinstance(colour, str):
        return parse_colour(colour)
    return tuple(int(v) for v in colour)  # type: ignore[return-value]


def _label(text: Any) -> str:
    words = str(text).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _first_text(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Per row, the first non-empty value among ``columns`` as text ('' when none)."""
    out = np.full(len(frame), "", dtype=object)
    for column in columns:
        if column not in frame.columns:
            continue
        values = frame[column].map(lambda v: v[0] if isinstance(v, (list, tuple)) and v else v)
        text = values.astype(object).where(values.notna(), "").map(lambda v: str(v).strip()).to_numpy(dtype=object)
        empty = out == ""
        out[empty] = text[empty]
    return out


def _colour_groups(colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct colours (k, 4) and the group of each row."""
    if not len(colours):
        return np.zeros((0, 4), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    packed = np.ascontiguousarray(colours, dtype=np.uint8).view(np.uint32).ravel()
    unique, inverse = np.unique(packed, return_inverse=True)
    return unique.view(np.uint8).reshape(-1, 4), inverse.ravel()


def _fills(shapes: LayerShapes, colours: np.ndarray, stroke: RGBA | None, stroke_px: float) -> list[FillGroup]:
    if not len(shapes.polygons):
        return []
    palette, group = _colour_groups(colours)
    out = []
    for colour, records in zip(palette, shapes.polygons.split(group, len(palette))):
        fill = _rgba(colour)
        if len(records) and (fill[3] > 0 or stroke is not None):
            out.append(FillGroup(records, fill if fill[3] > 0 else None, stroke, stroke_px))
    return out


def _lines(shapes: LayerShapes, colours: np.ndarray, width_px: float, width_m: float = 0.0,
           casing: RGBA | None = None, casing_px: float = 0.0) -> list[LineGroup]:
    if not len(shapes.lines):
        return []
    palette, group = _colour_groups(colours)
    return [LineGroup(records, _rgba(colour), width_px, width_m, casing, casing_px)
            for colour, records in zip(palette, shapes.lines.split(group, len(palette)))
            if len(records) and colour[3] > 0]


def _markers(shapes: LayerShapes, colours: np.ndarray, size_px: float, outline: RGBA | None,
             outline_px: float = 1.5) -> list[MarkerGroup]:
    if not len(shapes.points):
        return []
    palette, group = _colour_groups(colours)
    keys = group[shapes.point_rows]
    return [MarkerGroup(shapes.points[keys == k], _rgba(colour), size_px, outline, outline_px)
            for k, colour in enumerate(palette) if (keys == k).any() and colour[3] > 0]


def _main_shape(shapes: LayerShapes) -> str:
    if len(shapes.polygons):
        return "fill"
    if len(shapes.lines):
        return "line"
    return "marker"


def _solid(n: int, colour: RGBA) -> np.ndarray:
    return np.tile(np.array(colour, dtype=np.uint8), (n, 1))


def _lighten(colour: RGBA, amount: float) -> RGBA:
    r, g, b, a = colour
    return (round(r + (255 - r) * amount), round(g + (255 - g) * amount), round(b + (255 - b) * amount), a)


def _darker(colour: RGBA, amount: float = 0.25) -> RGBA:
    r, g, b, a = colour
    return (round(r * (1 - amount)), round(g * (1 - amount)), round(b * (1 - amount)), a)


# Role cartography ------------------------------------------------------------

BUILDING_FILL: RGBA = (217, 208, 201, 255)
BUILDING_STROKE: RGBA = (168, 152, 138, 255)
LAND_OTHER: RGBA = (224, 221, 210, 255)
NATURAL_OTHER: RGBA = (120, 145, 95, 255)
#: Land-class fills are mixed with white by this much so buildings and roads read on top.
LAND_FILL_LIGHTEN = 0.45

#: Road classes, top of the legend first: label, OSM highway values, width (px), typical width (m).
ROAD_CLASSES: tuple[tuple[str, frozenset[str], float, float], ...] = (
    ("Main road", frozenset({"motorway", "trunk", "primary", "motorway_link", "trunk_link", "primary_link"}),
     4.0, 9.0),
    ("Secondary road", frozenset({"secondary", "tertiary", "secondary_link", "tertiary_link"}), 3.2, 7.0),
    ("Local road", frozenset({"residential", "unclassified", "living_street", "road", "service", "raceway",
                              "busway", "construction", "escape"}), 2.2, 5.0),
    ("Path", frozenset({"pedestrian", "footway", "path", "steps", "cycleway", "bridleway", "track", "corridor",
                        "platform", "elevator", "via_ferrata"}), 1.0, 2.0),
)
LOCAL_ROAD, PATH = 2, 3
ROAD_NODE: RGBA = (125, 125, 125, 255)

POI_COLOURS: dict[str, RGBA] = {
    "hospital": (214, 39, 40, 255), "clinic": (214, 39, 40, 255), "doctors": (214, 39, 40, 255),
    "fire_station": (255, 127, 14, 255), "police": (31, 78, 156, 255), "school": (148, 103, 189, 255),
    "kindergarten": (170, 130, 210, 255), "university": (110, 70, 160, 255), "college": (110, 70, 160, 255),
    "parking": (127, 127, 127, 255), "shelter": (23, 190, 207, 255), "assembly_point": (23, 190, 207, 255),
    "stadium": (44, 160, 44, 255),
}
POI_KIND_COLUMNS = ("poi_kind", "amenity", "emergency", "leisure", "healthcare", "shop", "tourism")
POI_MARKER_PX = 9.0
HALO: RGBA = (255, 255, 255, 255)

#: ``natural`` features drawn as lines or points, by group: label, tags, colour.
NATURAL_GROUPS: tuple[tuple[str, frozenset[str], RGBA], ...] = (
    ("Trees", frozenset({"tree", "tree_row", "wood", "scrub", "shrub", "heath"}), (58, 130, 60, 255)),
    ("Coast and water", frozenset({"coastline", "water", "bay", "spring", "strait"}), (70, 140, 215, 255)),
    ("Rock and cliff", frozenset({"cliff", "bare_rock", "rock", "stone", "scree", "ridge", "arete", "peak",
                                  "cave_entrance"}), (135, 115, 95, 255)),
    ("Beach and sand", frozenset({"beach", "sand", "dune"}), (205, 185, 130, 255)),
)


@functools.lru_cache(maxsize=1)
def _land_table() -> tuple[pd.DataFrame, Any]:
    classes = load_land_classes()
    return classes, load_tag_mapping(classes=classes)


def _land_class_colours(codes: np.ndarray, other: RGBA) -> tuple[np.ndarray, list[LegendEntry]]:
    """Colours per row from land-class codes (None: ``other``) and legend rows for the classes present."""
    classes, _ = _land_table()
    colours = _solid(len(codes), other)
    legend = []
    for code, name, colour in zip(classes["code"], classes["name_en"], classes["color"]):
        hit = codes == code
        if hit.any():
            rgba = _lighten(parse_colour(colour), LAND_FILL_LIGHTEN)
            colours[hit] = rgba
            legend.append(LegendEntry(name, "fill", rgba, _darker(rgba)))
    return colours, legend


def _land(name: str, frame: pd.DataFrame, shapes: LayerShapes, natural: bool) -> VectorPaint:
    """Land use and natural areas in land-class colours; natural lines and points by their tag."""
    n = len(frame)
    _, mapping = _land_table()
    codes = classify_features(frame, mapping)[0].to_numpy(dtype=object)
    is_polygon = np.zeros(n, dtype=bool)
    is_polygon[shapes.polygons.rows] = True
    fill_colours, legend = _land_class_colours(np.where(is_polygon, codes, None), LAND_OTHER)
    unmapped = is_polygon & pd.isna(codes)
    tag_colours = _solid(n, NATURAL_OTHER if natural else _darker(LAND_OTHER))
    if natural:
        tags = _first_text(frame, ("natural",))
        in_lines = np.zeros(n, dtype=bool)
        in_lines[shapes.lines.rows] = True
        in_points = np.zeros(n, dtype=bool)
        in_points[shapes.point_rows] = True
        for label, values, colour in NATURAL_GROUPS:
            hit = np.isin(tags, list(values))
            tag_colours[hit] = colour
            if (hit & in_lines).any():
                legend.append(LegendEntry(label, "line", colour))
            elif (hit & in_points).any():
                legend.append(LegendEntry(label, "marker", colour))
            elif (hit & unmapped).any():
                legend.append(LegendEntry(label, "fill", _lighten(colour, 0.5), colour))
        light = tag_colours[unmapped].astype(float)
        light[:, :3] += (255.0 - light[:, :3]) * 0.5
        fill_colours[unmapped] = np.rint(light).astype(np.uint8)
    elif unmapped.any():
        legend.append(LegendEntry("Other land use", "fill", LAND_OTHER, _darker(LAND_OTHER)))
    fills = _fills(shapes, fill_colours, None, 0.0)
    for group in fills:
        group.stroke, group.stroke_px = (_darker(group.fill) if group.fill else None), 0.6
    markers = _markers(shapes, tag_colours, 4.0 if natural else 5.0, None)
    if not legend:
        legend = [LegendEntry(name, _main_shape(shapes), LAND_OTHER)]
    return VectorPaint(fills, _lines(shapes, tag_colours, 1.2), markers, legend)


def _pois(frame: pd.DataFrame, shapes: LayerShapes, style: Style | None) -> VectorPaint:
    """One marker per point of interest, coloured by its kind (amenity, emergency, leisure...)."""
    kind = _first_text(frame, POI_KIND_COLUMNS)
    kinds = pd.Series(kind[shapes.point_rows]).value_counts()
    palette = dict(POI_COLOURS)
    if isinstance(style, CategorisedStyle):
        palette.update({k: parse_colour(c) for k, c in style.categories.items()})
    unknown = sorted(k for k in kinds.index if k not in palette)
    spare = ramp_colours("tab10", max(len(unknown), 1))
    palette.update({k: _rgba(spare[i]) for i, k in enumerate(unknown)})
    grey: RGBA = (128, 128, 128, 255)
    colours = np.array([palette.get(k, grey) for k in kind], dtype=np.uint8).reshape(-1, 4)
    legend = [LegendEntry(_label(k) if k else "Other", "marker", palette.get(k, grey), HALO) for k in kinds.index]
    return VectorPaint([], [], _markers(shapes, colours, POI_MARKER_PX, HALO), legend)


def _road_class(frame: pd.DataFrame) -> np.ndarray:
    kind = _first_text(frame, ("highway", "road_class"))
    group = np.full(len(frame), LOCAL_ROAD, dtype=np.int64)
    for i, (_, values, _, _) in enumerate(ROAD_CLASSES):
        group[np.isin(kind, list(values))] = i
    return group


def _road_lines(shapes: LayerShapes, colours: np.ndarray, classes: np.ndarray, casing: RGBA | None,
                casing_px: float) -> list[LineGroup]:
    """Road lines by class (paths first, main roads on top) then colour; paths get no casing."""
    out = []
    palette, colour_group = _colour_groups(colours)
    key = classes * max(len(palette), 1) + colour_group
    pieces = shapes.lines.split(key, len(ROAD_CLASSES) * max(len(palette), 1))
    for cls in reversed(range(len(ROAD_CLASSES))):
        _, _, px, metres = ROAD_CLASSES[cls]
        for k, colour in enumerate(palette):
            records = pieces[cls * len(palette) + k]
            if len(records) and colour[3] > 0:
                out.append(LineGroup(records, _rgba(colour), px, metres,
                                     casing if cls != PATH else None, casing_px if cls != PATH else 0.0))
    return out


def _category_key(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _style_legend(style: Style, values: Any, name: str, shape: str, stroke: RGBA | None) -> list[LegendEntry]:
    if isinstance(style, CategorisedStyle):
        present = None
        if values is not None:
            present = {_category_key(v) for v in pd.unique(np.asarray(values, dtype=object).ravel())}
        out = [LegendEntry(_label(k), shape, parse_colour(c), stroke) for k, c in style.categories.items()
               if present is None or k in present]
        known = set(style.categories)
        if parse_colour(style.default)[3] > 0 and (present is None or (present - known - {None})):
            out.append(LegendEntry("Other", shape, parse_colour(style.default), stroke))
        return out
    if isinstance(style, GraduatedStyle):
        try:
            edges = style.edges(None if values is None else np.asarray(values, dtype=float))
        except (TypeError, ValueError):
            return [LegendEntry(name, shape, parse_colour(style.nodata), stroke)]
        colours = ramp_colours(style.ramp, len(edges) - 1, style.reverse)
        return [LegendEntry(f"{lo:.4g} – {hi:.4g}", shape, _rgba(c), stroke)
                for lo, hi, c in zip(edges[:-1], edges[1:], colours)]
    return [LegendEntry(name, shape, parse_colour(style.fill), stroke)]


def _styled(name: str, role: str, style: Style, frame: pd.DataFrame, shapes: LayerShapes) -> VectorPaint:
    """A layer drawn with its style: per-feature colours, the stroke as outline (areas), casing (lines)
    or halo (markers); roads are as wide as their class."""
    values = None if isinstance(style, SingleStyle) else frame[style.field]
    colours = colours_for(style, values, n=len(frame))
    stroke = parse_colour(style.stroke) if style.stroke_width > 0 else None
    if role == "roads":
        lines = _road_lines(shapes, colours, _road_class(frame), stroke, style.stroke_width / 2.0)
        markers = _markers(shapes, _solid(len(frame), ROAD_NODE), 2.5, None)
    else:
        lines = _lines(shapes, colours, 2.0 if role in ("inflows", "water") else 1.6, 0.0,
                       stroke, style.stroke_width / 2.0)
        markers = _markers(shapes, colours, style.point_size, stroke, style.stroke_width)
    paint = VectorPaint(_fills(shapes, colours, stroke, style.stroke_width), lines, markers, [],
                        filled=bool((colours[:, 3] > 0).any()) if len(colours) else True)
    shape = _main_shape(shapes) if role != "roads" else "line"
    paint.legend = _style_legend(style, values, name, shape, stroke)
    if len(paint.legend) == 1:
        paint.legend[0].label = name
    return paint


def _fallback(name: str, role: str, frame: pd.DataFrame, shapes: LayerShapes) -> VectorPaint:
    """Symbols from the role alone, for a style that does not fit the data (a missing field)."""
    if role == "buildings":
        style: Style = SingleStyle(fill="#d9d0c9", stroke="#a8988a", stroke_width=0.5)
    elif role in ("landuse", "natural"):
        return _land(name, frame, shapes, natural=role == "natural")
    elif role in ("pois", "shelters"):
        return _pois(frame, shapes, None)
    else:
        style = default_style(role)
        if not isinstance(style, SingleStyle):
            style = SingleStyle(fill="#9a9a9a", stroke="#555555", stroke_width=1.0)
    return _styled(name, role, style, frame, shapes)


def uses_markers(role: str) -> bool:
    """Points of interest (nodes and outlines mixed) are drawn as one marker per feature."""
    return role in ("pois", "shelters")


def vector_paint(name: str, role: str, style: Style | None, frame: pd.DataFrame, shapes: LayerShapes) -> VectorPaint:
    """How to draw a vector layer: its style, or its role's cartography while it keeps its starting style."""
    if uses_role_cartography(role, style):
        if role in ("landuse", "natural"):
            return _land(name, frame, shapes, natural=role == "natural")
        if role in ("pois", "shelters"):
            return _pois(frame, shapes, style)
    if style is None or is_default_style(style):
        return _fallback(name, role, frame, shapes)
    try:
        return _styled(name, role, style, frame, shapes)
    except (KeyError, ValueError, TypeError, TwinError):
        return _fallback(name, role, frame, shapes)


# ----------------------------------------------------------------------------- rasters

#: Elevation colours without the sea blue of the ``terrain`` ramp (a city DEM is land).
DEM_STOPS = ("#5a9e5a", "#9cc785", "#e8e8a0", "#d6bf86", "#a8845e", "#8c6e62", "#d9cfcc", "#ffffff")
RASTER_SAMPLE = 512  # cells per side looked at for colour stretches


def _ramp_lut(stops: tuple[str, ...] | np.ndarray, n: int = 256) -> np.ndarray:
    colours = np.array([parse_colour(c) for c in stops], dtype=float) if isinstance(stops[0], str) \
        else np.asarray(stops, dtype=float)
    at = np.linspace(0.0, 1.0, n)
    xp = np.linspace(0.0, 1.0, len(colours))
    return np.rint(np.column_stack([np.interp(at, xp, colours[:, k]) for k in range(4)])).astype(np.uint8)


def _stretch(values: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """2nd and 98th percentiles of the valid cells (from a subsample: fast on large grids)."""
    step = max(1, max(values.shape) // RASTER_SAMPLE)
    sample = values[::step, ::step][valid[::step, ::step]]
    if not len(sample):
        sample = values[valid]
    if not len(sample):
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [2, 98]))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    return lo, hi if hi > lo else lo + 1.0


def hillshade(z: np.ndarray, cell_x: float, cell_y: float, azimuth: float = 315.0, altitude: float = 45.0,
              exaggeration: float = 2.0) -> np.ndarray:
    """Lambertian shading 0..1 of a north-up elevation grid lit from ``azimuth`` (degrees from north)."""
    filled = np.where(np.isfinite(z), z, np.nanmin(z) if np.isfinite(z).any() else 0.0).astype(np.float32)
    d_row, d_col = np.gradient(filled, cell_y, cell_x)
    dzdx, dzdy = d_col * exaggeration, -d_row * exaggeration
    az, alt = math.radians(azimuth), math.radians(altitude)
    light = (math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt))
    shade = (-dzdx * light[0] - dzdy * light[1] + light[2]) / np.sqrt(dzdx * dzdx + dzdy * dzdy + 1.0)
    return np.clip(shade, 0.0, 1.0)


def _shaded(rgba: np.ndarray, grid: Grid) -> np.ndarray:
    """Colours darkened and lightened by the relief, so terrain reads under any colour scheme."""
    shade = hillshade(grid.values.astype(np.float32, copy=False), *grid.cell_size)
    factor = np.clip(0.25 + 0.75 * shade / math.sin(math.radians(45.0)), 0.25, 1.25)
    rgba[..., :3] = np.clip(rgba[..., :3] * factor[..., None], 0, 255).astype(np.uint8)
    return rgba


def _dem_paint(grid: Grid) -> RasterPaint:
    z = grid.values.astype(np.float32, copy=False)
    valid = np.isfinite(z)
    lo, hi = _stretch(z, valid)
    lut = _ramp_lut(DEM_STOPS)
    t = np.clip((np.nan_to_num(z, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    rgba = _shaded(lut[(t * 255).astype(np.uint8)], grid)
    rgba[..., 3] = np.where(valid, 255, 0)
    units = f" {grid.units}" if grid.units else ""
    ramp = [_rgba(c) for c in lut[np.linspace(0, 255, 6).astype(int)]]
    return RasterPaint(rgba, [LegendEntry(f"{lo:.0f} – {hi:.0f}{units}", "ramp", ramp[0], ramp=ramp)])


def _category_values(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The distinct valid values of an integer grid, sorted."""
    data = values[valid]
    if not len(data):
        return np.zeros(0, dtype=values.dtype)
    lo, hi = int(data.min()), int(data.max())
    if hi - lo < 1_000_000:
        counts = np.bincount((data - lo).ravel().astype(np.int64), minlength=hi - lo + 1)
        return np.flatnonzero(counts) + lo
    return np.unique(data)


def _paint_categories(values: np.ndarray, valid: np.ndarray, present: np.ndarray,
                      colours: list[RGBA]) -> np.ndarray:
    rgba = np.zeros((*values.shape, 4), dtype=np.uint8)
    if not len(present):
        return rgba
    index = np.clip(np.searchsorted(present, values), 0, len(present) - 1)
    rgba[:] = np.array(colours, dtype=np.uint8)[index]
    rgba[~valid] = 0
    return rgba


def _land_cover_paint(grid: Grid, valid: np.ndarray, present: np.ndarray, classes_csv: Path) -> RasterPaint:
    """Land cover values in the colours of the land classes they map to; unmapped values are not drawn."""
    classes, _ = _land_table()
    to_code = load_value_mapping(classes_csv, classes)
    names = dict(zip(classes["code"], classes["name_en"]))
    colours = dict(zip(classes["code"], classes["color"]))
    palette: list[RGBA] = []
    legend: dict[str, LegendEntry] = {}
    for value in present:
        code = to_code.get(int(value))
        if code not in colours:
            palette.append((0, 0, 0, 0))
            continue
        colour = _lighten(parse_colour(colours[code]), LAND_FILL_LIGHTEN)
        palette.append(colour)
        legend.setdefault(code, LegendEntry(names.get(code, code), "fill", colour))
    return RasterPaint(_paint_categories(grid.values, valid, present, palette), list(legend.values()))


def raster_paint(name: str, role: str, style: Style | None, grid: Grid, classes_csv: Path | None = None) -> RasterPaint:
    """Colours of a grid: its style once the user has set one; before that hillshaded terrain for a DEM,
    land-class colours for land cover with a classes table, a qualitative palette for other categorical
    grids and a colour ramp for continuous ones."""
    valid = grid.valid_mask()
    categorical = np.issubdtype(grid.values.dtype, np.integer)
    if style is not None and not uses_role_cartography(role, style):
        try:
            rgba = colours_for(style, grid.values, n=grid.values.size).reshape(*grid.shape, 4).copy()
            rgba[~valid] = 0
            if role == "dem" and not categorical:
                rgba = _shaded(rgba, grid)
            values = grid.values[valid] if not isinstance(style, SingleStyle) else None
            return RasterPaint(rgba, _style_legend(style, values, name, "fill", None))
        except (KeyError, ValueError, TypeError, TwinError):
            pass
    if role == "dem" and not categorical:
        return _dem_paint(grid)
    if categorical:
        present = _category_values(grid.values, valid)
        if role == "landcover" and classes_csv is not None:
            try:
                return _land_cover_paint(grid, valid, present, classes_csv)
            except TwinError:
                pass
        palette = [_rgba(c) for c in ramp_colours("tab10", len(present))]
        prefix = "Zone" if role == "rain_zones" else "Value"
        legend = [LegendEntry(f"{prefix} {v}", "fill", c) for v, c in zip(present, palette)]
        return RasterPaint(_paint_categories(grid.values, valid, present, palette), legend)
    values = grid.values.astype(np.float32, copy=False)
    lo, hi = _stretch(values, valid)
    lut = ramp_colours("blues" if role == "result" else "viridis", 256)
    t = np.clip((np.nan_to_num(values, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    rgba = lut[(t * 255).astype(np.uint8)].copy()
    rgba[~valid] = 0
    units = f" {grid.units}" if grid.units else ""
    ramp = [_rgba(c) for c in lut[np.linspace(0, 255, 6).astype(int)]]
    return RasterPaint(rgba, [LegendEntry(f"{lo:.3g} – {hi:.3g}{units}", "ramp", ramp[0], ramp=ramp)])


def cell_at(grid: Grid, x: float, y: float) -> tuple[int, int, Any] | None:
    """(row, col, value) of the grid cell under a map point, or None off the grid or on nodata."""
    rows, cols = grid.rowcol(np.array([x]), np.array([y]))
    r, c = int(rows[0]), int(cols[0])
    h, w = grid.shape
    if not (0 <= r < h and 0 <= c < w):
        return None
    value = grid.values[r, c]
    if np.issubdtype(grid.values.dtype, np.floating):
        if not np.isfinite(value):
            return None
    elif grid.nodata is not None and value == grid.nodata:
        return None
    return r, c, value.item()
