"""The layers panel: the one map's layer tree with check boxes, drag and drop and layer actions.

:class:`LayerTreeModel` mirrors a :class:`~twin.geo.layers.LayerTree` in Qt.
The tree only reports edits after they happen, so the model keeps its own copy
of the structure (nodes) and replays each signal on it between Qt's begin/end
calls; views then stay consistent whichever widget or script edited the tree.
Edits made in the panel go through the tree's API (``move``, ``remove``,
field assignment), never around it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractItemModel,
    QByteArray,
    QItemSelectionModel,
    QMimeData,
    QModelIndex,
    QPoint,
    QPointF,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QBrush, QColor, QFont, QIcon, QPainter, QPainterPath, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QSlider,
    QStyle,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from twin.errors import InputError
from twin.geo.layers import Layer, LayerGroup, LayerTree
from twin.geo.style import CategorisedStyle, GraduatedStyle, SingleStyle, parse_colour, ramp_colours

MIME_TYPE = "application/x-twin-layer-nodes"
ItemRole = Qt.ItemDataRole.UserRole + 1
_ICON = 16


def _bind(owner: Any, signal: Any, slot: Callable[..., Any]) -> None:
    """Connect a model signal to a widget slot, and disconnect it when the widget goes away."""
    signal.connect(slot)
    owner.destroyed.connect(lambda *_: signal.disconnect(slot))


# ----------------------------------------------------------------------------- icons


def _qcolor(hex_colour: str) -> QColor:
    r, g, b, a = parse_colour(hex_colour)
    return QColor(r, g, b, a)


def geometry_family(layer: Layer) -> str:
    """"point", "line", "polygon", "raster", "table" or "" — what the layer's swatch shows."""
    if layer.kind in ("raster", "mesh"):
        return "raster"
    if layer.kind == "table":
        return "table"
    data = layer.data
    geometry = getattr(data, "geometry", None) if data is not None else None
    if geometry is None or not len(geometry):
        return "polygon"
    import shapely

    ids = shapely.get_type_id(np.asarray(geometry.values))
    ids = ids[ids >= 0]
    if not len(ids):
        return "polygon"
    family = np.select([np.isin(ids, (0, 4)), np.isin(ids, (1, 2, 5))], [0, 1], 2)
    return ("point", "line", "polygon")[int(np.bincount(family, minlength=3).argmax())]


def _style_colours(layer: Layer) -> list[QColor]:
    style = layer.style
    if isinstance(style, SingleStyle):
        return [_qcolor(style.fill)]
    if isinstance(style, CategorisedStyle):
        colours = list(style.categories.values())[:4] or [style.default]
        return [_qcolor(c) for c in colours]
    if isinstance(style, GraduatedStyle):
        return [QColor(*map(int, c)) for c in ramp_colours(style.ramp, 4, style.reverse)]
    return [QColor("#888888")]


def layer_icon(layer: Layer, family: str) -> QIcon:
    """A swatch in the layer's style colours, shaped like its geometry (dot, line, area, grid)."""
    pix = QPixmap(_ICON, _ICON)
    pix.fill(Qt.GlobalColor.transparent)
    colours = _style_colours(layer)
    stroke = _qcolor(layer.style.stroke)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    if family == "point":
        p.setPen(QPen(stroke, 1))
        p.setBrush(colours[0])
        p.drawEllipse(QRectF(3.5, 3.5, 9, 9))
    elif family == "line":
        path = QPainterPath(QPointF(1.5, 12.5))
        path.cubicTo(QPointF(6, 2), QPointF(10, 14), QPointF(14.5, 3.5))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(colours[0].darker(115) if isinstance(layer.style, SingleStyle) else colours[-1], 2.4,
                      Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawPath(path)
    elif family in ("raster", "table"):
        cells = colours if len(colours) >= 4 else (colours * 4)[:4]
        if family == "table":
            cells = [QColor("#f4f4f4")] * 4
        for k, colour in enumerate(cells):
            p.fillRect(QRectF(2 + 6 * (k % 2), 2 + 6 * (k // 2), 6, 6), colour)
        p.setPen(QPen(QColor("#777777"), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(QRectF(2.5, 2.5, 11, 11))
        if family == "table":
            p.drawLine(QPointF(2.5, 8), QPointF(13.5, 8))
            p.drawLine(QPointF(8, 2.5), QPointF(8, 13.5))
    else:
        rect = QRectF(2.5, 2.5, 11, 11)
        if len(colours) == 1:
            p.fillRect(rect, colours[0])
        else:
            step = rect.width() / len(colours)
            for k, colour in enumerate(colours):
                p.fillRect(QRectF(rect.left() + k * step, rect.top(), step + 0.5, rect.height()), colour)
        p.setPen(QPen(stroke, 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(rect)
    p.end()
    return QIcon(pix)


# ----------------------------------------------------------------------------- model


class _Node:
    """The model's copy of one tree position (a Qt index needs a stable parent link)."""

    __slots__ = ("key", "item", "parent", "children")

    def __init__(self, key: int, item: Layer | LayerGroup | None, parent: "_Node | None") -> None:
        self.key = key
        self.item = item
        self.parent = parent
        self.children: list[_Node] = []

    def row(self) -> int:
        return self.parent.children.index(self) if self.parent is not None else 0


class LayerTreeModel(QAbstractItemModel):
    """A one-column Qt model over a :class:`LayerTree`: groups with their layers, top drawn first.

    Check boxes are visibility (a group's box sets all its layers), the
    decoration is a style swatch, names can be edited in place, and rows can be
    dragged to reorder or to move layers between groups.
    """

    def __init__(self, tree: LayerTree, parent: Any = None) -> None:
        super().__init__(parent)
        self.tree = tree
        self._keys = itertools.count(1)
        self._root = _Node(0, None, None)
        self._nodes: dict[int, _Node] = {}
        self._icons: dict[int, tuple[Any, QIcon]] = {}
        self._families: dict[int, tuple[int, str]] = {}
        self._rebuild()
        _bind(self, tree.inserted, self._on_inserted)
        _bind(self, tree.removed, self._on_removed)
        _bind(self, tree.moved, self._on_moved)
        _bind(self, tree.changed, self._on_changed)

    # ------------------------------------------------------------------ structure

    def _new_node(self, item: Layer | LayerGroup, parent: _Node) -> _Node:
        node = _Node(next(self._keys), item, parent)
        self._nodes[node.key] = node
        if isinstance(item, LayerGroup):
            node.children = [self._new_node(child, node) for child in item.children]
        return node

    def _forget(self, node: _Node) -> None:
        for child in node.children:
            self._forget(child)
        self._nodes.pop(node.key, None)
        if node.item is not None:
            self._icons.pop(id(node.item), None)
            self._families.pop(id(node.item), None)

    def _rebuild(self) -> None:
        self._nodes.clear()
        self._root.children = [self._new_node(item, self._root) for item in self.tree.items]

    def reset(self) -> None:
        """Re-read the whole tree (after edits made while signals were blocked)."""
        self.beginResetModel()
        self._rebuild()
        self.endResetModel()

    def _node(self, index: QModelIndex) -> _Node:
        if not index.isValid():
            return self._root
        return self._nodes.get(index.internalId(), self._root)

    def _container(self, group: str | None) -> _Node | None:
        if group is None:
            return self._root
        return next((n for n in self._root.children if isinstance(n.item, LayerGroup) and n.item.name == group), None)

    def _node_of(self, item: Any) -> _Node | None:
        for node in self._nodes.values():
            if node.item is item:
                return node
        return None

    def _index_of_node(self, node: _Node, column: int = 0) -> QModelIndex:
        if node is self._root:
            return QModelIndex()
        return self.createIndex(node.row(), column, node.key)

    def index_of(self, item: Layer | LayerGroup | str) -> QModelIndex:
        """The index showing a layer or group (by object, or by name: layers before groups)."""
        if isinstance(item, str):
            layer = next((lay for lay in self.tree if lay.name == item), None)
            item = layer if layer is not None else self.tree.group(item)
        node = self._node_of(item)
        return self._index_of_node(node) if node is not None else QModelIndex()

    def item(self, index: QModelIndex) -> Layer | LayerGroup | None:
        """The layer or group at an index (None for the root)."""
        return self._node(index).item

    # ------------------------------------------------------------------ tree signals

    def _on_inserted(self, item: Any, group: str | None, index: int) -> None:
        parent = self._container(group)
        if parent is None or self._node_of(item) is not None:
            self.reset()
            return
        index = max(0, min(index, len(parent.children)))
        self.beginInsertRows(self._index_of_node(parent), index, index)
        parent.children.insert(index, self._new_node(item, parent))
        self.endInsertRows()
        if parent is not self._root:
            self._refresh(parent)

    def _on_removed(self, item: Any, group: str | None, index: int) -> None:
        parent = self._container(group)
        node = self._node_of(item)
        if parent is None or node is None or node.parent is not parent:
            self.reset()
            return
        row = node.row()
        self.beginRemoveRows(self._index_of_node(parent), row, row)
        del parent.children[row]
        self._forget(node)
        self.endRemoveRows()
        if parent is not self._root:
            self._refresh(parent)

    def _on_moved(self, item: Any, old_group: str | None, old_index: int, new_group: str | None,
                  new_index: int) -> None:
        node = self._node_of(item)
        source = node.parent if node is not None else None
        target = self._container(new_group)
        if node is None or source is None or target is None:
            self.reset()
            return
        row = node.row()
        destination = new_index + 1 if source is target and new_index > row else new_index
        if not self.beginMoveRows(self._index_of_node(source), row, row, self._index_of_node(target), destination):
            self.reset()
            return
        del source.children[row]
        target.children.insert(new_index, node)
        node.parent = target
        self.endMoveRows()
        for parent in {id(source): source, id(target): target}.values():
            if parent is not self._root:
                self._refresh(parent)

    def _on_changed(self, item: Any, field: str, value: Any) -> None:
        node = self._node_of(item)
        if node is None:
            return
        if field in ("style", "kind"):
            self._icons.pop(id(item), None)
        self._refresh(node)
        if field == "visible":
            if node.parent is not None and node.parent is not self._root:
                self._refresh(node.parent)
            for child in node.children:
                self._refresh(child)

    def _refresh(self, node: _Node) -> None:
        index = self._index_of_node(node)
        if index.isValid():
            self.dataChanged.emit(index, index, [])

    # ------------------------------------------------------------------ Qt model API

    def index(self, row: int, column: int, parent: QModelIndex = QModelIndex()) -> QModelIndex:
        node = self._node(parent)
        if column != 0 or not 0 <= row < len(node.children):
            return QModelIndex()
        return self.createIndex(row, column, node.children[row].key)

    def parent(self, index: QModelIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        node = self._nodes.get(index.internalId())
        if node is None or node.parent is None or node.parent is self._root:
            return QModelIndex()
        return self._index_of_node(node.parent)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._node(parent).children)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 1

    def hasChildren(self, parent: QModelIndex = QModelIndex()) -> bool:
        return self.rowCount(parent) > 0

    def _check_state(self, item: Layer | LayerGroup) -> Qt.CheckState:
        if isinstance(item, Layer):
            return Qt.CheckState.Checked if item.visible else Qt.CheckState.Unchecked
        if not item.visible:
            return Qt.CheckState.Unchecked
        shown = [layer.visible for layer in item.children]
        if not shown or all(shown):
            return Qt.CheckState.Checked
        return Qt.CheckState.PartiallyChecked if any(shown) else Qt.CheckState.Unchecked

    def _family(self, layer: Layer) -> str:
        cached = self._families.get(id(layer))
        if cached is None or cached[0] != id(layer.data):
            cached = (id(layer.data), geometry_family(layer))
            self._families[id(layer)] = cached
        return cached[1]

    def _icon(self, layer: Layer) -> QIcon:
        family = self._family(layer)
        key = (family, id(layer.style))
        cached = self._icons.get(id(layer))
        if cached is None or cached[0] != key:
            cached = (key, layer_icon(layer, family))
            self._icons[id(layer)] = cached
        return cached[1]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self._node(index).item
        if item is None:
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return item.name
        if role == Qt.ItemDataRole.CheckStateRole:
            return self._check_state(item)
        if role == ItemRole:
            return item
        if isinstance(item, LayerGroup):
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setBold(True)
                return font
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"<b>{item.name}</b><br>group of {len(item.children)} layer(s)"
            return None
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(item)
        if role == Qt.ItemDataRole.ForegroundRole:
            group = self._node(index).parent.item
            if isinstance(group, LayerGroup) and not group.visible:
                return QBrush(QPalette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(item)
        return None

    def setData(self, index: QModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        item = self.item(index)
        if item is None:
            return False
        if role == Qt.ItemDataRole.CheckStateRole:
            checked = Qt.CheckState(value) != Qt.CheckState.Unchecked
            self.set_visible(item, checked)
            return True
        if role == Qt.ItemDataRole.EditRole:
            text = str(value).strip()
            if not text or text == item.name:
                return False
            try:
                item.name = text
            except (InputError, ValueError):
                return False
            return True
        return False

    def set_visible(self, item: Layer | LayerGroup, visible: bool) -> None:
        """Show or hide a layer, or a group with all its layers; showing a layer also shows its group."""
        if isinstance(item, LayerGroup):
            item.visible = visible
            for layer in item.children:
                layer.visible = visible
            return
        item.visible = visible
        node = self._node_of(item)
        group = node.parent.item if node is not None and node.parent is not None else None
        if visible and isinstance(group, LayerGroup) and not group.visible:
            group.visible = True

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        flags = (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable
                 | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsDragEnabled)
        if isinstance(self.item(index), LayerGroup):
            flags |= Qt.ItemFlag.ItemIsDropEnabled
        return flags

    # ------------------------------------------------------------------ moving

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [MIME_TYPE]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        keys = []
        for index in indexes:
            if index.isValid() and index.internalId() not in keys:
                keys.append(index.internalId())
        mime = QMimeData()
        mime.setData(MIME_TYPE, QByteArray(json.dumps(keys).encode()))
        return mime

    def _decode(self, data: QMimeData) -> list[Layer | LayerGroup]:
        if not data.hasFormat(MIME_TYPE):
            return []
        try:
            keys = json.loads(bytes(data.data(MIME_TYPE).data()).decode())
        except (ValueError, UnicodeDecodeError):
            return []
        nodes = [self._nodes[k] for k in keys if isinstance(k, int) and k in self._nodes]
        return [n.item for n in self._in_view_order(nodes)]

    def _in_view_order(self, nodes: Iterable[_Node]) -> list[_Node]:
        def position(node: _Node) -> tuple[int, int]:
            if node.parent is self._root:
                return node.row(), -1
            return node.parent.row(), node.row()

        return sorted(nodes, key=position)

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,
                        parent: QModelIndex) -> bool:
        items = self._decode(data)
        if not items or action not in (Qt.DropAction.MoveAction, Qt.DropAction.CopyAction):
            return False
        target = self.item(parent)
        if isinstance(target, Layer):
            return False
        return not (isinstance(target, LayerGroup) and any(isinstance(i, LayerGroup) for i in items))

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,
                     parent: QModelIndex) -> bool:
        if action == Qt.DropAction.IgnoreAction:
            return True
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        target = self.item(parent)
        return self.move_items(self._decode(data), target.name if isinstance(target, LayerGroup) else None, row)

    def moveRows(self, sourceParent: QModelIndex, sourceRow: int, count: int, destinationParent: QModelIndex,
                 destinationChild: int) -> bool:
        source = self._node(sourceParent)
        items = [n.item for n in source.children[sourceRow:sourceRow + count]]
        target = self.item(destinationParent)
        if not items or isinstance(target, Layer):
            return False
        return self.move_items(items, target.name if isinstance(target, LayerGroup) else None, destinationChild)

    def move_items(self, items: Sequence[Layer | LayerGroup], group: str | None, row: int) -> bool:
        """Put items, in order, before ``row`` of ``group`` (None: top level; row -1: at the end).

        ``row`` counts positions as they are before the move, as a drop does.
        """
        if any(isinstance(i, LayerGroup) for i in items) and group is not None:
            return False
        if not items:
            return False
        target = self._container(group)
        if target is None:
            return False
        anchor = target.children[row].item if 0 <= row < len(target.children) else None
        moving = {id(i) for i in items}
        while anchor is not None and id(anchor) in moving:
            nxt = row + 1
            anchor = target.children[nxt].item if nxt < len(target.children) else None
            row = nxt
        try:
            for item in items:
                siblings = [n.item for n in self._container(group).children if n.item is not item]
                position = next((k for k, s in enumerate(siblings) if s is anchor), len(siblings))
                self.tree.move(item.name, position, group=group, kind=_kind(item))
        except InputError:
            return False
        return True


def _kind(item: Layer | LayerGroup) -> str:
    """The tree's name space of an item (a group may share its name with one of its layers)."""
    return "group" if isinstance(item, LayerGroup) else "layer"


def _tooltip(layer: Layer) -> str:
    meta = layer.metadata
    parts = [f"<b>{layer.name}</b>", f"{layer.role} · {layer.kind}"]
    if meta.get("features") is not None:
        parts.append(f"{int(meta['features']):,} features")
    if layer.crs:
        parts.append(layer.crs)
    return "<br>".join(parts)


# ----------------------------------------------------------------------------- properties


def _number(value: float) -> str:
    return f"{value:,.1f}"


def layer_properties(layer: Layer) -> list[tuple[str, str]]:
    """(label, text) rows describing a layer: what the properties dialog lists."""
    meta = layer.metadata
    rows = [("Name", layer.name), ("Role", layer.role), ("Kind", layer.kind), ("Group", layer.group or "—"),
            ("Source", layer.source or "—"), ("CRS", layer.crs or meta.get("crs") or "—")]
    if meta.get("features") is not None:
        rows.append(("Features", f"{int(meta['features']):,}"))
    elif meta.get("rows") is not None:
        rows.append(("Rows", f"{int(meta['rows']):,}"))
    elif layer.data is not None and hasattr(layer.data, "__len__"):
        rows.append(("Features", f"{len(layer.data):,}"))
    if meta.get("shape"):
        rows.append(("Grid", " × ".join(f"{int(v):,}" for v in meta["shape"]) + " cells"))
    if meta.get("cell_size_m"):
        rows.append(("Cell size", " × ".join(f"{float(v):,.2f}" for v in meta["cell_size_m"]) + " m"))
    extent = meta.get("extent")
    if extent:
        xmin, ymin, xmax, ymax = (float(v) for v in extent)
        rows.append(("Extent", f"{_number(xmin)}, {_number(ymin)} – {_number(xmax)}, {_number(ymax)}"))
        rows.append(("Size", f"{(xmax - xmin) / 1000:,.2f} × {(ymax - ymin) / 1000:,.2f} km"))
    else:
        rows.append(("Extent", "—"))
    if "geometry_report" in meta:
        rows.append(("Geometry check", meta["geometry_report"] or "no problems"))
    rows.append(("Style", layer.style.kind + (f" on {layer.style.field}" if hasattr(layer.style, "field") else "")))
    rows.append(("Visible", "yes" if layer.visible else "no"))
    rows.append(("Opacity", f"{layer.opacity:.0%}"))
    return rows


class LayerPropertiesDialog(QDialog):
    """Read-only facts about a layer: where it comes from, its CRS, size, extent and geometry check."""

    def __init__(self, layer: Layer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Layer properties — {layer.name}")
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setHorizontalSpacing(14)
        self.rows = layer_properties(layer)
        for label, text in self.rows:
            value = QLabel(text)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)
            value.setMinimumWidth(360)
            form.addRow(f"{label}:", value)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)


# ----------------------------------------------------------------------------- panel


def _ask(parent: QWidget, question: str) -> bool:
    answer = QMessageBox.question(parent, "Twin", question)
    return answer == QMessageBox.StandardButton.Yes


class LayerPanel(QWidget):
    """The layers dock: the tree with check boxes, an opacity slider and each layer's actions.

    ``confirm(question) -> bool`` and ``exec_dialog(dialog) -> int``
    are plain attributes so scripts and tests can answer without modal dialogs.
    """

    current_layer_changed = Signal(str)
    zoom_to_layer = Signal(str)
    open_table = Signal(str)

    def __init__(self, tree: LayerTree, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = tree
        self.confirm: Callable[[str], bool] = lambda question: _ask(self, question)
        self.exec_dialog: Callable[[QDialog], int] = lambda dialog: dialog.exec()

        self.model = LayerTreeModel(tree, self)
        self.view = QTreeView(self)
        self.view.setModel(self.model)
        self.view.setHeaderHidden(True)
        self.view.setIconSize(QSize(_ICON, _ICON))
        self.view.setUniformRowHeights(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setDragEnabled(True)
        self.view.setAcceptDrops(True)
        self.view.setDropIndicatorShown(True)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                                  | QAbstractItemView.EditTrigger.SelectedClicked)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._show_menu)
        self.view.doubleClicked.connect(self._double_clicked)
        self.view.expanded.connect(lambda index: self._set_expanded(index, True))
        self.view.collapsed.connect(lambda index: self._set_expanded(index, False))
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.model.rowsInserted.connect(self._rows_inserted)
        self.model.modelReset.connect(self._apply_expansion)

        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setPageStep(10)
        self.opacity_slider.setToolTip("Opacity of the current layer")
        self.opacity_label = QLabel("100 %", self)
        self.opacity_label.setMinimumWidth(self.opacity_label.fontMetrics().horizontalAdvance("100 %") + 6)
        self.opacity_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.opacity_slider.valueChanged.connect(self._slider_moved)

        opacity_row = QHBoxLayout()
        opacity_row.setContentsMargins(4, 0, 4, 0)
        opacity_row.addWidget(QLabel("Opacity", self))
        opacity_row.addWidget(self.opacity_slider, 1)
        opacity_row.addWidget(self.opacity_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.setSpacing(4)
        layout.addWidget(self.view, 1)
        layout.addLayout(opacity_row)

        _bind(self, tree.changed, self._tree_changed)
        self._apply_expansion()
        self._sync_slider()

    # ------------------------------------------------------------------ current layer

    def current_item(self) -> Layer | LayerGroup | None:
        return self.model.item(self.view.currentIndex())

    def current_layer(self) -> Layer | None:
        """The layer the actions and the opacity slider apply to (None when a group or nothing is current)."""
        item = self.current_item()
        return item if isinstance(item, Layer) else None

    def set_current(self, item: Layer | LayerGroup | str) -> None:
        """Make a layer (or group) current and selected, as a click would."""
        index = self.model.index_of(item)
        self.view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self._sync_slider()
        layer = self.current_layer()
        self.current_layer_changed.emit(layer.name if layer is not None else "")

    def _sync_slider(self) -> None:
        layer = self.current_layer()
        self.opacity_slider.setEnabled(layer is not None)
        value = round((layer.opacity if layer is not None else 1.0) * 100)
        self.opacity_slider.blockSignals(True)
        self.opacity_slider.setValue(value)
        self.opacity_slider.blockSignals(False)
        self.opacity_label.setText(f"{value} %")

    def _slider_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        layer = self.current_layer()
        if layer is not None:
            layer.opacity = value / 100

    def _tree_changed(self, item: Any, field: str, value: Any) -> None:
        if field == "opacity" and item is self.current_layer():
            self._sync_slider()
        elif field == "expanded" and isinstance(item, LayerGroup):
            index = self.model.index_of(item)
            if index.isValid() and self.view.isExpanded(index) != bool(value):
                self.view.setExpanded(index, bool(value))
        elif field == "name" and item is self.current_layer():
            self.current_layer_changed.emit(item.name)

    # ------------------------------------------------------------------ expansion

    def _apply_expansion(self) -> None:
        for group in self.tree.groups:
            self.view.setExpanded(self.model.index_of(group), group.expanded)

    def _rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        for row in range(first, last + 1):
            item = self.model.item(self.model.index(row, 0, parent))
            if isinstance(item, LayerGroup):
                self.view.setExpanded(self.model.index(row, 0, parent), item.expanded)
        group = self.model.item(parent)
        if isinstance(group, LayerGroup):
            self.view.setExpanded(parent, group.expanded)

    def _set_expanded(self, index: QModelIndex, expanded: bool) -> None:
        item = self.model.item(index)
        if isinstance(item, LayerGroup) and item.expanded != expanded:
            item.expanded = expanded

    # ------------------------------------------------------------------ actions

    def menu_for(self, item: Layer | LayerGroup | None) -> QMenu:
        """The context menu of a layer or group (built on demand; also used by tests)."""
        menu = QMenu(self)
        if isinstance(item, Layer):
            name = item.name
            zoom = menu.addAction("Zoom to Layer")
            zoom.triggered.connect(lambda: self.zoom_to_layer.emit(name))
            table = menu.addAction("Open Attribute Table")
            table.setEnabled(item.kind in ("vector", "table"))
            table.triggered.connect(lambda: self.open_table.emit(name))
            menu.addSeparator()
            menu.addAction("Style…").triggered.connect(lambda: self.open_style_dialog(item))
            menu.addAction("Properties…").triggered.connect(lambda: self.open_properties(item))
            menu.addSeparator()
            menu.addAction(self.style().standardIcon(QStyle.StandardPixmap.SP_TrashIcon),
                           "Remove Layer…").triggered.connect(lambda: self.remove_item(item))
        elif isinstance(item, LayerGroup):
            menu.addAction("Show All Layers").triggered.connect(lambda: self.model.set_visible(item, True))
            menu.addAction("Hide All Layers").triggered.connect(lambda: self.model.set_visible(item, False))
            menu.addSeparator()
            menu.addAction(self.style().standardIcon(QStyle.StandardPixmap.SP_TrashIcon),
                           "Remove Group…").triggered.connect(lambda: self.remove_item(item))
        return menu

    def _show_menu(self, pos: QPoint) -> None:
        item = self.model.item(self.view.indexAt(pos))
        if item is None:
            return
        self.set_current(item)
        self.menu_for(item).exec(self.view.viewport().mapToGlobal(pos))

    def _double_clicked(self, index: QModelIndex) -> None:
        item = self.model.item(index)
        if isinstance(item, Layer):
            self.open_style_dialog(item)

    def actions_of(self, menu: QMenu) -> dict[str, QAction]:
        """Menu actions by their text (ellipsis and mnemonics removed)."""
        return {a.text().replace("…", "").replace("&", ""): a for a in menu.actions() if not a.isSeparator()}

    def open_style_dialog(self, layer: Layer) -> int:
        from twin.ui.style_dialog import StyleDialog

        dialog = StyleDialog(layer, self)
        try:
            return self.exec_dialog(dialog)
        finally:
            dialog.deleteLater()

    def open_properties(self, layer: Layer) -> int:
        dialog = LayerPropertiesDialog(layer, self)
        try:
            return self.exec_dialog(dialog)
        finally:
            dialog.deleteLater()

    def remove_item(self, item: Layer | LayerGroup) -> bool:
        """Take a layer or a group out of the tree once the user confirms; True when removed."""
        what = "group" if isinstance(item, LayerGroup) else "layer"
        extra = f" and its {len(item.children)} layer(s)" if isinstance(item, LayerGroup) and item.children else ""
        if not self.confirm(f"Remove the {what} “{item.name}”{extra} from the map?"):
            return False
        self.tree.remove(item.name, kind=_kind(item))
        return True
