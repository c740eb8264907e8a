"""The 2D map: every visible layer of the one map drawn with QPainter.

Each layer's geometry is flattened once into ``QPainterPath`` objects (one per
colour, in coordinates relative to an origin near the city) and a raster into
one image; panning and zooming only change the painter's transform.  The
drawn layers are cached in an image that is shifted and scaled while the user
drags or turns the wheel, and redrawn once the view settles.  What to draw
(colours, legend, hits) comes from the Qt-free :mod:`twin.ui.map2d_render`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from PySide6.QtCore import QByteArray, QDataStream, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QKeyEvent,
    QLinearGradient,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from twin.geo.layers import Layer, LayerTree
from twin.geo.onemap import OneMap
from twin.geo.raster import Grid
from twin.geo.selection import Selection
from twin.geo.style import style_to_dict
from twin.ui.map2d_render import (
    BACKGROUND,
    LayerShapes,
    LegendEntry,
    LonLat,
    RasterPaint,
    Shape,
    VectorPaint,
    View,
    area_covers,
    attributes,
    build_area,
    cell_at,
    format_length,
    highlight_paint,
    hit_row,
    layer_shapes,
    needed_area,
    path_bytes,
    raster_paint,
    rows_in_box,
    scale_bar_length,
    split_subpaths,
    uses_markers,
    vector_paint,
)

TOOLS = ("pan", "zoom_box", "identify", "select_box")
LEGEND_ENTRIES = 6  # classes shown per layer before "… n more"
RGBA = tuple[int, int, int, int]
def _colour(rgba: RGBA) -> QColor:
    return QColor(int(rgba[0]), int(rgba[1]), int(rgba[2]), int(rgba[3]))


def _path(records: np.ndarray) -> QPainterPath:
    path = QPainterPath()
    QDataStream(QByteArray(path_bytes(records))) >> path
    return path


def _pen(rgba: RGBA, width: float, cosmetic: bool = True, round_ends: bool = True) -> QPen:
    pen = QPen(_colour(rgba))
    pen.setWidthF(width)
    pen.setCosmetic(cosmetic)
    if round_ends:
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


def _qt_shapes(shapes: list[Shape]) -> list[tuple[list[QPainterPath], Shape]]:
    return [([_path(piece) for piece in split_subpaths(shape.records)], shape)
            for shape in shapes if len(shape.records)]


class _Symbols:
    """Qt paths of a :class:`VectorPaint`: the scale-free ones built once, the rest once per scale
    (and, for lines wide enough to be cut to the view, again when the view leaves the area built)."""

    def __init__(self, paint: VectorPaint) -> None:
        self.paint = paint
        self._fixed: list | None = None
        self._scaled: tuple[float | None, tuple | None, list] = (None, None, [])

    def items(self, view: View, origin: tuple[float, float]) -> list[tuple[list[QPainterPath], Shape]]:
        if self._fixed is None:
            self._fixed = _qt_shapes(self.paint.fixed_shapes())
        scale, built, _ = self._scaled
        if scale != view.scale or not area_covers(built, needed_area(self.paint, view, origin)):
            area = build_area(self.paint, view, origin)
            self._scaled = (view.scale, area, _qt_shapes(self.paint.scaled_shapes(view.scale, area)))
        return self._fixed + self._scaled[2]

    def draw(self, painter: QPainter, view: View, origin: tuple[float, float]) -> None:
        painter.save()
        painter.setTransform(QTransform(*view.transform(*origin)))
        for paths, shape in self.items(view, origin):
            if shape.thin_px > 0:
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.setPen(_pen(shape.colour, shape.thin_px))
            else:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(_colour(shape.colour))
            for path in paths:
                painter.drawPath(path)
        painter.restore()


@dataclass
class _Drawn:
    """A layer's Qt objects, rebuilt when its data, role or style changes."""

    layer: Layer
    data: Any
    role: str
    style_key: str
    paint: VectorPaint | RasterPaint
    shapes: LayerShapes | None = None
    symbols: _Symbols | None = None
    image: QImage | None = None

    @property
    def grid(self) -> Grid | None:
        return self.data if isinstance(self.data, Grid) else None

    def pick_px(self, scale: float) -> float:
        return self.paint.pick_px(scale) if isinstance(self.paint, VectorPaint) else 1.0


@dataclass
class _Drag:
    mode: str  # "pan" (also a click to identify), "zoom_box" or "select_box"
    start: QPointF
    now: QPointF
    add: bool = False


def _style_key(layer: Layer) -> str:
    return json.dumps(style_to_dict(layer.style), sort_keys=True, default=str)


class MapCanvas(QWidget):
    """The 2D map view of a :class:`OneMap`, linked to the shared :class:`Selection`.

    Signals: ``identified(layer, row, attributes)`` (row -1 and ``value``/``row``/``col``
    for a raster cell), ``cursor_moved(x, y, lon, lat)``, ``extent_changed(xmin, ymin,
    xmax, ymax)`` and ``tool_changed(tool)``.
    """

    identified = Signal(str, int, dict)
    cursor_moved = Signal(float, float, float, float)
    extent_changed = Signal(float, float, float, float)
    tool_changed = Signal(str)

    PICK_TOLERANCE_PX = 4.0
    WHEEL_STEP = 1.25
    SETTLE_MS = 160
    DRAG_THRESHOLD_PX = 4.0

    def __init__(self, one_map: OneMap | None, selection: Selection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 120)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._selection = selection
        self._one_map: OneMap | None = None
        self._tree: LayerTree | None = None
        self._lonlat: LonLat | None = None
        self._origin = (0.0, 0.0)
        self._drawn_layers: dict[int, _Drawn] = {}
        self._view = View(0.0, 0.0, 1.0, max(self.width(), 1), max(self.height(), 1))
        self._fit_extent: tuple[float, float, float, float] | None = None
        self._tool = "pan"
        self._current_layer = ""
        self._drag: _Drag | None = None
        self._interacting = False
        self._map_image: QImage | None = None
        self._map_view: View | None = None
        self._map_dirty = True
        self._highlight: tuple[tuple, Any] | None = None
        self.last_render_s = 0.0
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(self.SETTLE_MS)
        self._settle.timeout.connect(self._settled)
        selection.changed.connect(self._on_selection_changed)
        self._apply_cursor()
        self.set_one_map(one_map)

    # ------------------------------------------------------------------ model

    @property
    def one_map(self) -> OneMap | None:
        return self._one_map

    def set_one_map(self, one_map: OneMap | None) -> None:
        """Show another city (or nothing); the view goes to its full extent."""
        if self._tree is not None:
            for signal in (self._tree.inserted, self._tree.removed, self._tree.moved, self._tree.changed):
                signal.disconnect(self._on_tree_edited)
        self._one_map = one_map
        self._tree = one_map.tree if one_map is not None else None
        self._drawn_layers.clear()
        self._highlight = None
        self._lonlat = LonLat(one_map.crs) if one_map is not None else None
        if self._tree is not None:
            for signal in (self._tree.inserted, self._tree.removed, self._tree.moved, self._tree.changed):
                signal.connect(self._on_tree_edited)
        self._current_layer = self._default_layer()
        if one_map is not None:
            xmin, ymin, xmax, ymax = (float(v) for v in one_map.extent())
            self._origin = (round((xmin + xmax) / 2.0), round((ymin + ymax) / 2.0))
        self._invalidate()
        self.full_extent()

    def _default_layer(self) -> str:
        if self._tree is None:
            return ""
        layers = [layer for layer in self._tree if isinstance(layer.data, gpd.GeoDataFrame)]
        for layer in layers:
            if layer.role == "buildings":
                return layer.name
        return layers[0].name if layers else ""

    def _on_tree_edited(self, *args: Any) -> None:
        present = {id(layer) for layer in self._tree} if self._tree is not None else set()
        for gone in set(self._drawn_layers) - present:
            del self._drawn_layers[gone]
        self._invalidate()

    def _on_selection_changed(self, *args: Any) -> None:
        self._highlight = None
        self.update()

    def _invalidate(self) -> None:
        self._map_dirty = True
        self.update()

    # ------------------------------------------------------------------ tools

    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        """``pan``, ``zoom_box``, ``identify`` or ``select_box`` (what a left-button drag or click does)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown map tool {tool!r}; use one of {', '.join(TOOLS)}")
        if tool != self._tool:
            self._tool = tool
            self._apply_cursor()
            self.tool_changed.emit(tool)

    def _apply_cursor(self) -> None:
        shapes = {"pan": Qt.CursorShape.OpenHandCursor, "zoom_box": Qt.CursorShape.CrossCursor,
                  "identify": Qt.CursorShape.WhatsThisCursor, "select_box": Qt.CursorShape.CrossCursor}
        self.setCursor(shapes[self._tool])

    @property
    def current_layer(self) -> str:
        return self._current_layer

    def set_current_layer(self, name: str) -> None:
        """The layer a box selection selects in."""
        if self._tree is None or self._tree.find(name) is None:
            raise KeyError(f"no layer {name!r} in the map")
        self._current_layer = name

    # ------------------------------------------------------------------ view

    def _sync_size(self) -> View:
        """The view at the widget's current size (the widget may be resized before it is shown)."""
        width, height = max(self.width(), 1), max(self.height(), 1)
        if (self._view.width, self._view.height) != (width, height):
            view = View.fit(self._fit_extent, width, height) if self._fit_extent else self._view.resized(width, height)
            self._set_view(view, keep_fit=True)
        return self._view

    def _set_view(self, view: View, keep_fit: bool = False) -> None:
        if not keep_fit:
            self._fit_extent = None
        if view == self._view:
            return
        old = self._view.extent()
        self._view = view
        self.update()
        if view.extent() != old:
            self.extent_changed.emit(*view.extent())

    def view_extent(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the map on screen, in the project CRS."""
        return self._sync_size().extent()

    @property
    def scale(self) -> float:
        """Screen pixels per metre."""
        return self._sync_size().scale

    def zoom_to_extent(self, xmin: float, ymin: float, xmax: float, ymax: float) -> None:
        """Show this rectangle (project CRS) whole."""
        extent = (float(xmin), float(ymin), float(xmax), float(ymax))
        self._sync_size()
        self._set_view(View.fit(extent, max(self.width(), 1), max(self.height(), 1)))
        self._fit_extent = extent

    def full_extent(self) -> None:
        """Show the whole city (its boundary, else all its data)."""
        if self._one_map is None:
            return
        self.zoom_to_extent(*self._one_map.extent())

    def zoom_to_layer(self, name: str) -> None:
        """Show all of one layer."""
        layer = self._tree.find(name) if self._tree is not None else None
        if layer is None:
            raise KeyError(f"no layer {name!r} in the map")
        drawn = self._drawn(layer)
        extent = None
        if drawn is not None and drawn.grid is not None:
            extent = drawn.grid.bounds
        elif drawn is not None and drawn.shapes is not None:
            extent = drawn.shapes.bounds()
        if extent is not None:
            # A single point (or a straight north-south line) still gets some surroundings.
            pad_x = 10.0 if extent[2] == extent[0] else 0.0
            pad_y = 10.0 if extent[3] == extent[1] else 0.0
            self.zoom_to_extent(extent[0] - pad_x, extent[1] - pad_y, extent[2] + pad_x, extent[3] + pad_y)

    def set_view_centre(self, x: float, y: float) -> None:
        """Move the view so (x, y) is in the middle, keeping the scale (to follow the 3D camera)."""
        self._set_view(self._sync_size().centred_on(x, y))

    def zoom_by(self, factor: float, sx: float | None = None, sy: float | None = None) -> None:
        """Zoom in (factor > 1) or out about a screen point (default: the centre)."""
        self._set_view(self._sync_size().zoomed(factor, sx, sy))

    def map_to_screen(self, x: float, y: float) -> tuple[float, float]:
        """Widget pixel position of a project-CRS point."""
        sx, sy = self._sync_size().to_screen(x, y)
        return float(sx), float(sy)

    def screen_to_map(self, sx: float, sy: float) -> tuple[float, float]:
        """Project-CRS point under a widget pixel position."""
        x, y = self._sync_size().to_map(sx, sy)
        return float(x), float(y)

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        """Longitude and latitude of a project-CRS point."""
        if self._lonlat is None:
            return float("nan"), float("nan")
        return self._lonlat(x, y)

    # ------------------------------------------------------------------ layers

    def _classes_csv(self, layer: Layer) -> Path | None:
        manifest = self._one_map.manifest if self._one_map is not None else None
        if manifest is None:
            return None
        for spec in manifest.layers:
            if spec.classes and (spec.name == layer.name or str(manifest.source_path(spec)) == layer.source):
                return manifest.folder / spec.classes
        return None

    def _drawn(self, layer: Layer) -> _Drawn | None:
        """The layer's Qt objects, built on first use and after a data, role or style change."""
        data = layer.data
        if not isinstance(data, (gpd.GeoDataFrame, Grid)):
            return None
        key = _style_key(layer)
        old = self._drawn_layers.get(id(layer))
        if old is not None and old.layer is layer and old.data is data and old.style_key == key \
                and old.role == layer.role:
            return old
        if isinstance(data, Grid):
            paint = raster_paint(layer.name, layer.role, layer.style, data, self._classes_csv(layer))
            rgba = np.ascontiguousarray(paint.rgba)
            rows, cols = rgba.shape[:2]
            image = QImage(rgba.data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888)
            image = image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
            drawn = _Drawn(layer, data, layer.role, key, paint, image=image)
        else:
            reuse = old is not None and old.layer is layer and old.data is data and old.role == layer.role
            shapes = old.shapes if reuse and old.shapes is not None else \
                layer_shapes(data.geometry.values, self._origin, as_markers=uses_markers(layer.role))
            paint = vector_paint(layer.name, layer.role, layer.style, data, shapes)
            drawn = _Drawn(layer, data, layer.role, key, paint, shapes, _Symbols(paint))
        self._drawn_layers[id(layer)] = drawn
        if self._highlight is not None and self._highlight[0][0] == layer.name:
            self._highlight = None
        return drawn

    def legend(self, name: str) -> list[LegendEntry]:
        """The legend rows the map shows for a layer (empty for a table or an unknown layer)."""
        layer = self._tree.find(name) if self._tree is not None else None
        drawn = self._drawn(layer) if layer is not None else None
        return list(drawn.paint.legend) if drawn is not None else []

    def scale_bar_metres(self) -> float:
        """Length of the scale bar at the current view (a round number of metres)."""
        view = self._sync_size()
        return scale_bar_length(view.metres_per_pixel, max_px=min(180.0, view.width * 0.3))

    # ------------------------------------------------------------------ painting

    def _render_layers(self, view: View, dpr: float = 1.0) -> QImage:
        """Every visible layer, bottom first, into a fresh image of the view's size."""
        started = time.perf_counter()
        image = QImage(max(round(view.width * dpr), 1), max(round(view.height * dpr), 1),
                       QImage.Format.Format_ARGB32_Premultiplied)
        image.setDevicePixelRatio(dpr)
        image.fill(_colour(BACKGROUND))
        if self._tree is not None:
            painter = QPainter(image)
            try:
                painter.setRenderHint(QPainter.RenderHint.Antialiasing)
                for layer in reversed(self._tree.visible_layers()):
                    if layer.opacity <= 0.0:
                        continue
                    drawn = self._drawn(layer)
                    if drawn is not None:
                        self._draw_layer(painter, drawn, view, dpr)
            finally:
                painter.end()
        self.last_render_s = time.perf_counter() - started
        return image

    def _draw_layer(self, painter: QPainter, drawn: _Drawn, view: View, dpr: float) -> None:
        opacity = drawn.layer.opacity
        if drawn.image is not None and drawn.grid is not None:
            painter.save()
            painter.setOpacity(opacity)
            painter.setTransform(QTransform(*view.grid_transform(drawn.grid.transform)))
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform,
                                  view.scale * drawn.grid.cell_size[0] < 1.5)
            painter.drawImage(QPointF(0.0, 0.0), drawn.image)
            painter.restore()
            return
        if opacity >= 1.0:
            self._draw_vector(painter, drawn, view)
            return
        # A see-through vector layer is drawn whole first, so that its own overlapping
        # symbols do not show through each other.
        layer_image = QImage(painter.device().width(), painter.device().height(),
                             QImage.Format.Format_ARGB32_Premultiplied)
        layer_image.setDevicePixelRatio(dpr)
        layer_image.fill(Qt.GlobalColor.transparent)
        inner = QPainter(layer_image)
        inner.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._draw_vector(inner, drawn, view)
        inner.end()
        painter.save()
        painter.setOpacity(opacity)
        painter.drawImage(QPointF(0.0, 0.0), layer_image)
        painter.restore()

    def _draw_vector(self, painter: QPainter, drawn: _Drawn, view: View) -> None:
        if drawn.symbols is not None and drawn.shapes is not None:
            drawn.symbols.draw(painter, view, drawn.shapes.origin)

    def _highlight_symbols(self) -> tuple[_Symbols, tuple[float, float]] | None:
        """Symbols of the selected features (rebuilt when the selection or the layer changes)."""
        name, rows = self._selection.layer, self._selection.rows
        layer = self._tree.find(name) if (self._tree is not None and name) else None
        if layer is None or not len(rows):
            return None
        drawn = self._drawn(layer)
        if drawn is None or drawn.shapes is None:
            return None
        key = (name, id(drawn), hash(np.asarray(rows).tobytes()))
        if self._highlight is None or self._highlight[0] != key:
            paint = highlight_paint(drawn.shapes, rows, min(drawn.pick_px(1.0) * 2.0 - 2.0, 14.0))
            self._highlight = (key, (_Symbols(paint), drawn.shapes.origin))
        return self._highlight[1]

    def _draw_selection(self, painter: QPainter, view: View) -> None:
        found = self._highlight_symbols()
        if found is not None:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            found[0].draw(painter, view, found[1])

    # ------------------------------------------------------------------ overlays

    def _legend_rows(self) -> list[tuple[str, list[LegendEntry]]]:
        rows = []
        for layer in self._tree.visible_layers() if self._tree is not None else []:
            drawn = self._drawn(layer)
            if drawn is not None and drawn.paint.legend:
                rows.append((layer.name, drawn.paint.legend))
        return rows

    def _draw_swatch(self, painter: QPainter, entry: LegendEntry, rect: QRectF) -> None:
        painter.save()
        if entry.shape == "ramp" and entry.ramp:
            gradient = QLinearGradient(rect.left(), 0.0, rect.right(), 0.0)
            for i, colour in enumerate(entry.ramp):
                gradient.setColorAt(i / max(len(entry.ramp) - 1, 1), _colour(colour))
            painter.setBrush(QBrush(gradient))
            painter.setPen(_pen((90, 90, 90, 255), 0.8))
            painter.drawRect(rect)
        elif entry.shape == "line":
            ends = (QPointF(rect.left() + 2, rect.center().y()), QPointF(rect.right() - 2, rect.center().y()))
            if entry.outline is not None:
                painter.setPen(_pen(entry.outline, 4.6))
                painter.drawLine(*ends)
            painter.setPen(_pen(entry.colour, 3.0))
            painter.drawLine(*ends)
        elif entry.shape == "marker":
            radius = min(rect.height(), rect.width()) / 2.0 - 0.5
            painter.setBrush(_colour(entry.colour))
            painter.setPen(_pen((90, 90, 90, 255), 0.8) if entry.outline is None else _pen((70, 70, 70, 255), 0.9))
            painter.drawEllipse(rect.center(), radius, radius)
        else:
            painter.setBrush(_colour(entry.colour) if entry.colour[3] > 0 else Qt.BrushStyle.NoBrush)
            outline = entry.outline if entry.outline is not None else (110, 110, 110, 255)
            painter.setPen(_pen(outline, 1.6 if entry.colour[3] == 0 else 0.9))
            painter.drawRect(rect.adjusted(0.5, 0.5, -0.5, -0.5))
        painter.restore()

    def set_legend_visible(self, visible: bool) -> None:
        """Show or hide the legend drawn on the map (exports follow the same choice)."""
        self.legend_visible = bool(visible)
        self.update()

    def _draw_legend(self, painter: QPainter, view: View) -> None:
        groups = self._legend_rows() if getattr(self, "legend_visible", True) else []
        if not groups:
            return
        font = QFont(self.font())
        font.setPointSizeF(8.0)
        bold = QFont(font)
        bold.setBold(True)
        metrics, bold_metrics = QFontMetricsF(font), QFontMetricsF(bold)
        line_h = max(metrics.height(), 13.0) + 2.0
        swatch_w, swatch_h, pad, indent = 18.0, 10.0, 7.0, 8.0
        max_w = min(260.0, view.width * 0.3)
        rows: list[tuple[str, str, LegendEntry | None]] = []  # kind, text, entry
        for name, entries in groups:
            if len(entries) == 1 and entries[0].shape != "ramp":
                rows.append(("single", name, entries[0]))
            else:
                rows.append(("title", name, None))
                rows.extend(("entry", e.label, e) for e in entries[:LEGEND_ENTRIES])
                if len(entries) > LEGEND_ENTRIES:
                    rows.append(("more", f"… {len(entries) - LEGEND_ENTRIES} more", None))
        limit = max(int((view.height - 120) / line_h), 3)
        if len(rows) > limit:
            rows = rows[:limit - 1] + [("more", "…", None)]
        width = 0.0
        for kind, text, _ in rows:
            m = bold_metrics if kind in ("single", "title") else metrics
            extra = swatch_w + 6 + (indent if kind == "entry" else 0) if kind in ("single", "entry") else 0
            width = max(width, min(m.horizontalAdvance(text), max_w) + extra)
        box = QRectF(10.0, 10.0, width + 2 * pad, len(rows) * line_h + 2 * pad - 2.0)
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(_pen((160, 160, 160, 255), 1.0))
        painter.setBrush(QColor(255, 255, 255, 228))
        painter.drawRoundedRect(box, 4.0, 4.0)
        y = box.top() + pad
        for kind, text, entry in rows:
            x = box.left() + pad + (indent if kind in ("entry", "more") else 0.0)
            if entry is not None:
                self._draw_swatch(painter, entry, QRectF(x, y + (line_h - swatch_h) / 2.0 - 1.0, swatch_w, swatch_h))
                x += swatch_w + 6.0
            m = bold_metrics if kind in ("single", "title") else metrics
            painter.setFont(bold if kind in ("single", "title") else font)
            painter.setPen(QColor(40, 40, 40) if kind != "more" else QColor(110, 110, 110))
            shown = m.elidedText(text, Qt.TextElideMode.ElideRight, max_w)
            painter.drawText(QRectF(x, y, box.right() - x, line_h - 1.0),
                             int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), shown)
            y += line_h
        painter.restore()

    def _draw_scale_bar(self, painter: QPainter, view: View) -> None:
        length = scale_bar_length(view.metres_per_pixel, max_px=min(180.0, view.width * 0.3))
        bar = length * view.scale
        font = QFont(self.font())
        font.setPointSizeF(8.0)
        metrics = QFontMetricsF(font)
        label = format_length(length)
        x0, y0, h = 14.0, view.height - 22.0, 6.0
        box = QRectF(x0 - 6.0, y0 - metrics.height() - 8.0, bar + 12.0 + metrics.horizontalAdvance(label) / 2.0,
                     metrics.height() + h + 14.0)
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 200))
        painter.drawRoundedRect(box, 3.0, 3.0)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        quarter = bar / 4.0
        painter.setPen(_pen((30, 30, 30, 255), 1.0, round_ends=False))
        for i in range(4):
            painter.setBrush(QColor(30, 30, 30) if i % 2 == 0 else QColor(255, 255, 255))
            painter.drawRect(QRectF(x0 + i * quarter, y0, quarter, h))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setFont(font)
        painter.setPen(QColor(30, 30, 30))
        painter.drawText(QPointF(x0 - metrics.horizontalAdvance("0") / 2.0, y0 - 4.0), "0")
        painter.drawText(QPointF(x0 + bar - metrics.horizontalAdvance(label) / 2.0, y0 - 4.0), label)
        painter.restore()

    def _draw_north_arrow(self, painter: QPainter, view: View) -> None:
        cx, top, half, height = view.width - 30.0, 30.0, 9.0, 30.0
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 200))
        painter.drawEllipse(QPointF(cx, top + height / 2.0 - 3.0), 23.0, 23.0)
        left = QPolygonF([QPointF(cx, top), QPointF(cx - half, top + height), QPointF(cx, top + height - 8.0)])
        right = QPolygonF([QPointF(cx, top), QPointF(cx + half, top + height), QPointF(cx, top + height - 8.0)])
        painter.setPen(_pen((30, 30, 30, 255), 1.0))
        painter.setBrush(QColor(30, 30, 30))
        painter.drawPolygon(left)
        painter.setBrush(QColor(255, 255, 255))
        painter.drawPolygon(right)
        font = QFont(self.font())
        font.setPointSizeF(9.0)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor(30, 30, 30))
        painter.drawText(QRectF(cx - 10.0, top - 17.0, 20.0, 15.0), int(Qt.AlignmentFlag.AlignCenter), "N")
        painter.restore()

    def _draw_attribution(self, painter: QPainter, view: View) -> None:
        if self._one_map is None or not self._one_map.attribution:
            return
        font = QFont(self.font())
        font.setPointSizeF(7.0)
        metrics = QFontMetricsF(font)
        text = metrics.elidedText(self._one_map.attribution[0], Qt.TextElideMode.ElideRight, view.width * 0.5)
        w, h = metrics.horizontalAdvance(text) + 8.0, metrics.height() + 2.0
        rect = QRectF(view.width - w, view.height - h, w, h)
        painter.save()
        painter.resetTransform()
        painter.fillRect(rect, QColor(255, 255, 255, 190))
        painter.setFont(font)
        painter.setPen(QColor(70, 70, 70))
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)
        painter.restore()

    def _draw_overlays(self, painter: QPainter, view: View) -> None:
        if self._one_map is None:
            return
        self._draw_legend(painter, view)
        self._draw_scale_bar(painter, view)
        self._draw_north_arrow(painter, view)
        self._draw_attribution(painter, view)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        self._paint_widget()

    def _paint_widget(self) -> None:
        view = self._sync_size()
        dpr = self.devicePixelRatioF()
        stale = self._map_image is None or self._map_dirty or self._map_view is None \
            or self._map_image.devicePixelRatio() != dpr
        if stale or (self._map_view != view and not self._interacting):
            self._map_image = self._render_layers(view, dpr)
            self._map_view, self._map_dirty = view, False
        painter = QPainter(self)
        try:
            if self._map_view == view:
                painter.drawImage(QPointF(0.0, 0.0), self._map_image)
            else:
                painter.fillRect(self.rect(), _colour(BACKGROUND))
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
                painter.drawImage(QRectF(*view.mapped_rect(self._map_view)), self._map_image)
            self._draw_selection(painter, view)
            self._draw_overlays(painter, view)
            if self._drag is not None and self._drag.mode in ("zoom_box", "select_box"):
                self._draw_rubber_band(painter, self._drag)
        finally:
            painter.end()

    @staticmethod
    def _draw_rubber_band(painter: QPainter, drag: _Drag) -> None:
        rect = QRectF(drag.start, drag.now).normalized()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        colour = (30, 110, 220) if drag.mode == "zoom_box" else (220, 160, 0)
        painter.setPen(QPen(QColor(*colour), 1.0, Qt.PenStyle.DashLine))
        painter.setBrush(QColor(*colour, 40))
        painter.drawRect(rect)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        self._sync_size()
        self._map_dirty = True
        super().resizeEvent(event)

    # ------------------------------------------------------------------ export

    def render_image(self, width: int, height: int) -> QImage:
        """The current view (the same area, fitted to the new size) with selection, legend, scale bar
        and north arrow, as an image for export."""
        view = View.fit(self._sync_size().extent(), width, height, margin=0.0)
        image = self._render_layers(view)
        painter = QPainter(image)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            self._draw_selection(painter, view)
            self._draw_overlays(painter, view)
        finally:
            painter.end()
        return image

    def save_png(self, path: str | os.PathLike[str], width: int, height: int) -> Path:
        """Write :meth:`render_image` to a PNG; a reader never sees a half-written file."""
        target = Path(path)
        image = self.render_image(width, height)
        handle, temp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".png", dir=target.parent or ".")
        os.close(handle)
        try:
            if not image.save(temp, "PNG"):
                raise OSError(f"could not write a PNG to {target}")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temp, 0o666 & ~umask)  # a temporary file is private; the export is an ordinary file
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target

    # ------------------------------------------------------------------ identify and select

    def _hit(self, x: float, y: float, layer_name: str | None = None) -> tuple[Layer, int, Any] | None:
        if self._tree is None:
            return None
        scale = self._sync_size().scale
        if layer_name is not None:
            found = self._tree.find(layer_name)
            layers = [found] if found is not None else []
        else:
            layers = self._tree.visible_layers()
        for layer in layers:
            drawn = self._drawn(layer)
            if drawn is None:
                continue
            if drawn.grid is not None:
                cell = cell_at(drawn.grid, x, y)
                if cell is not None and drawn.paint.rgba[cell[0], cell[1], 3] > 0:
                    return layer, -1, cell
            elif drawn.shapes is not None:
                tolerance = max(self.PICK_TOLERANCE_PX, drawn.pick_px(scale)) / scale
                row = hit_row(drawn.shapes, x, y, tolerance, filled=drawn.paint.filled)
                if row is not None:
                    return layer, row, None
        return None

    def feature_at(self, x: float, y: float, layer: str | None = None) -> tuple[str, int] | None:
        """(layer name, row) of the topmost visible feature at a project-CRS point (row -1 for a
        raster cell), or None.  ``layer`` looks in that layer only."""
        hit = self._hit(x, y, layer)
        return None if hit is None else (hit[0].name, hit[1])

    def identify_at(self, x: float, y: float, layer: str | None = None) -> tuple[str, int, dict] | None:
        """Identify the topmost feature or raster cell at a project-CRS point and emit ``identified``."""
        hit = self._hit(x, y, layer)
        if hit is None:
            return None
        found, row, cell = hit
        if cell is not None:
            info = {"value": cell[2], "row": cell[0], "col": cell[1]}
        else:
            info = attributes(found.data, row)
        self.identified.emit(found.name, row, info)
        return found.name, row, info

    def select_in_box(self, xmin: float, ymin: float, xmax: float, ymax: float, add: bool = False) -> np.ndarray:
        """Select the current layer's features touching a project-CRS rectangle (``add``: keep the others)."""
        layer = self._tree.find(self._current_layer) if self._tree is not None else None
        drawn = self._drawn(layer) if layer is not None else None
        if drawn is None or drawn.shapes is None:
            return np.empty(0, dtype=np.int64)
        box = (min(xmin, xmax), min(ymin, ymax), max(xmin, xmax), max(ymin, ymax))
        rows = rows_in_box(drawn.shapes, box)
        if add and self._selection.layer == layer.name:
            rows = np.union1d(self._selection.rows, rows)
        self._selection.select(layer.name, rows)
        return rows

    def _select_at(self, x: float, y: float, add: bool) -> None:
        layer = self._tree.find(self._current_layer) if self._tree is not None else None
        drawn = self._drawn(layer) if layer is not None else None
        if drawn is None or drawn.shapes is None:
            return
        tolerance = max(self.PICK_TOLERANCE_PX, drawn.pick_px(self._view.scale)) / self._view.scale
        row = hit_row(drawn.shapes, x, y, tolerance, filled=drawn.paint.filled)
        rows = [] if row is None else [row]
        if add and self._selection.layer == layer.name:
            rows = np.setxor1d(self._selection.rows, rows)
        self._selection.select(layer.name, rows)

    # ------------------------------------------------------------------ mouse and keys

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if event.button() == Qt.MouseButton.MiddleButton or (
                event.button() == Qt.MouseButton.LeftButton and self._tool in ("pan", "identify") and not shift):
            self._drag = _Drag("pan", pos, pos)
            self._interacting = True
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif event.button() == Qt.MouseButton.LeftButton:
            if shift or self._tool == "zoom_box":
                self._drag = _Drag("zoom_box", pos, pos)
            elif self._tool == "select_box":
                self._drag = _Drag("select_box", pos, pos, add=ctrl)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._drag is not None:
            previous, self._drag.now = self._drag.now, pos
            if self._drag.mode == "pan":
                self._set_view(self._view.panned(pos.x() - previous.x(), pos.y() - previous.y()))
            else:
                self.update()
        x, y = self.screen_to_map(pos.x(), pos.y())
        lon, lat = self.lonlat(x, y)
        self.cursor_moved.emit(x, y, lon, lat)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        drag, self._drag = self._drag, None
        if drag is None:
            return
        drag.now = event.position()
        moved = (drag.now - drag.start).manhattanLength() > self.DRAG_THRESHOLD_PX
        x0, y0 = self.screen_to_map(drag.start.x(), drag.start.y())
        x1, y1 = self.screen_to_map(drag.now.x(), drag.now.y())
        if drag.mode == "pan":
            self._interacting = False
            self._apply_cursor()
            if not moved and self._tool == "identify":
                self.identify_at(x1, y1)
        elif drag.mode == "zoom_box":
            if moved:
                self.zoom_to_extent(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            else:
                self.zoom_by(2.0, drag.now.x(), drag.now.y())
        elif drag.mode == "select_box":
            if moved:
                self.select_in_box(x0, y0, x1, y1, add=drag.add)
            else:
                self._select_at(x1, y1, add=drag.add)
        self.update()
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps == 0:
            return
        pos = event.position()
        self._interacting = True
        self._settle.start()
        self.zoom_by(self.WHEEL_STEP ** steps, pos.x(), pos.y())
        event.accept()

    def _settled(self) -> None:
        if self._drag is None:
            self._interacting = False
            self.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(self.WHEEL_STEP)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(1.0 / self.WHEEL_STEP)
        elif key == Qt.Key.Key_Escape and self._drag is not None:
            self._drag = None
            self._interacting = False
            self._apply_cursor()
            self.update()
        else:
            super().keyPressEvent(event)
