"""The attribute table: a layer's features as rows, sorted, filtered and selected in step with the map.

:class:`FrameModel` formats a cell only when the view asks for it, so a table of
tens of thousands of features opens at once.  Sorting and filtering are done
with numpy/pandas in :class:`FrameProxy` (a proxy model, like
QSortFilterProxyModel, but computing the row order in one vectorised step
instead of calling back into Python for every comparison).  The selection is
the shared :class:`~twin.geo.selection.Selection`, in data-frame row positions,
so the map and the table always agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import (
    QAbstractProxyModel,
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from twin.geo.layers import Layer
from twin.geo.selection import Selection
from twin.ui.style_dialog import numeric_values

_ID_LIKE = re.compile(r"(^|[_:])(id|fid|uuid|ref|code|year|postcode)$", re.IGNORECASE)
_SEPARATOR = "\x1f"
FILTER_DELAY_MS = 200


def _bind(owner: Any, signal: Any, slot: Any) -> None:
    """Connect a model signal to a widget slot, and disconnect it when the widget goes away."""
    signal.connect(slot)
    owner.destroyed.connect(lambda *_: signal.disconnect(slot))


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and value != value


def attribute_frame(data: Any) -> pd.DataFrame:
    """The columns a table shows: every column of a (Geo)DataFrame except geometries."""
    if not isinstance(data, pd.DataFrame):
        return pd.DataFrame()
    keep = [c for c, dtype in data.dtypes.items() if getattr(dtype, "name", "") != "geometry"]
    frame = pd.DataFrame(data[keep], copy=False) if len(keep) != len(data.columns) else data.copy(deep=False)
    frame.attrs = {}  # pandas copies attrs on every column access; the table needs none of them
    return frame


def _decimals(values: np.ndarray) -> int:
    """Decimals a float column needs: none for whole numbers, at most 2 (4 for values below 1)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return 0
    most = 2 if np.median(np.abs(v)) >= 1 else 4
    for d in range(most):
        scaled = v * 10.0 ** d
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return d
    return most


class _Column:
    """How one column is shown and sorted (worked out the first time it is needed)."""

    __slots__ = ("series", "values", "kind", "decimals", "_keys", "_text")

    def __init__(self, name: str, series: pd.Series) -> None:
        self.series = series
        self.values = series.to_numpy()
        dtype = series.dtype
        self.decimals = 0
        self._keys: tuple[np.ndarray, np.ndarray] | None = None
        self._text: np.ndarray | None = None
        if pd.api.types.is_bool_dtype(dtype):
            self.kind = "bool"
        elif pd.api.types.is_integer_dtype(dtype):
            self.kind = "id" if _ID_LIKE.search(str(name)) else "int"
        elif pd.api.types.is_float_dtype(dtype):
            self.kind = "float"
            self.decimals = _decimals(series.to_numpy(dtype=float, na_value=np.nan))
        else:
            self.kind = "text"

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float", "id")

    def text(self, row: int) -> str:
        value = self.values[row]
        if _missing(value):
            return ""
        kind = self.kind
        if kind == "float":
            return f"{float(value):,.{self.decimals}f}"
        if kind == "int":
            return f"{int(value):,}"
        if kind == "bool":
            return "true" if value else "false"
        return str(value)

    def sort_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(rank of each row, missing mask): numbers by value, text case-insensitively."""
        if self._keys is None:
            series = pd.Series(self.values)
            numbers = numeric_values(series) if self.kind != "bool" else series.astype(float).to_numpy()
            if numbers is not None:
                missing = ~np.isfinite(numbers)
                keys = np.where(missing, 0.0, numbers)
            else:
                missing = series.isna().to_numpy()
                text = series.astype(object).where(~missing, "").map(str).str.casefold().to_numpy(dtype=object)
                _, keys = np.unique(text.astype(str), return_inverse=True)
            self._keys = (np.asarray(keys), np.asarray(missing, dtype=bool))
        return self._keys

    def search_text(self) -> np.ndarray:
        """Lower-case text of every cell, for the filter."""
        if self._text is None:
            present = ~np.asarray(pd.isna(self.values), dtype=bool)
            text = np.full(len(self.values), "", dtype=object)
            if present.any():
                cells = pd.Series(self.values[present], dtype=object).astype(str).str.casefold()
                text[present] = cells.to_numpy(dtype=object)
            self._text = text
        return self._text

    def has_values(self) -> bool:
        return bool(len(self.values)) and not bool(np.all(pd.isna(self.values)))


class FrameModel(QAbstractTableModel):
    """A read-only table over a data frame's non-geometry columns; source row = data-frame position."""

    SortKeyRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, frame: pd.DataFrame | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self._frame = pd.DataFrame()
        self._columns: list[_Column | None] = []
        self._row_text: np.ndarray | None = None
        self.set_frame(frame if frame is not None else pd.DataFrame())

    @property
    def frame(self) -> pd.DataFrame:
        return self._frame

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.beginResetModel()
        self._frame = attribute_frame(frame)
        self._columns = [None] * self._frame.shape[1]
        self._row_text = None
        self.endResetModel()

    def column(self, col: int) -> _Column:
        info = self._columns[col]
        if info is None:
            info = _Column(str(self._frame.columns[col]), self._frame.iloc[:, col])
            self._columns[col] = info
        return info

    def column_names(self) -> list[str]:
        return [str(c) for c in self._frame.columns]

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._frame)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else self._frame.shape[1]

    def text(self, row: int, col: int) -> str:
        return self.column(col).text(row)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole or role == Qt.ItemDataRole.ToolTipRole:
            text = self.column(index.column()).text(index.row())
            return text if role == Qt.ItemDataRole.DisplayRole or len(text) > 40 else None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if self.column(index.column()).numeric:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return str(self._frame.columns[section]) if 0 <= section < self._frame.shape[1] else None
        return str(self._frame.index[section]) if 0 <= section < len(self._frame) else None

    def row_text(self) -> np.ndarray:
        """All cells of each row joined, lower case: what an all-columns filter searches."""
        if self._row_text is None:
            n = len(self._frame)
            if not self._frame.shape[1]:
                self._row_text = np.full(n, "", dtype=object)
            else:
                parts = [self.column(c).search_text() for c in range(self._frame.shape[1])
                         if self.column(c).has_values()] or [np.full(n, "", dtype=object)]
                self._row_text = np.array([_SEPARATOR.join(cells) for cells in zip(*parts)], dtype=object)
        return self._row_text


class FrameProxy(QAbstractProxyModel):
    """Rows of a :class:`FrameModel` filtered and sorted (row order computed with numpy)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._order = np.empty(0, dtype=np.int64)
        self._inverse = np.empty(0, dtype=np.int64)
        self._text = ""
        self._filter_column: int | None = None
        self._only: np.ndarray | None = None
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._columns = 0

    def setSourceModel(self, model: FrameModel) -> None:  # type: ignore[override]
        self.beginResetModel()
        old = self.sourceModel()
        if old is not None:
            old.modelReset.disconnect(self.invalidate)
        super().setSourceModel(model)
        model.modelReset.connect(self.invalidate)
        self._sort_column = -1
        self._compute()
        self.endResetModel()

    def source(self) -> FrameModel:
        return self.sourceModel()  # type: ignore[return-value]

    # ------------------------------------------------------------------ settings

    def set_text_filter(self, text: str, column: int | None = None) -> None:
        """Keep rows whose text contains ``text`` (case-insensitive) in one column, or in any."""
        text = text.strip().casefold()
        if (text, column) != (self._text, self._filter_column):
            self._text, self._filter_column = text, column
            self.invalidate()

    def set_only_rows(self, rows: np.ndarray | None) -> None:
        """Keep only these source rows (None: no such restriction)."""
        self._only = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.invalidate()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column, self._sort_order = column, order
        self.invalidate()

    def sort_column(self) -> int:
        return self._sort_column

    def sortOrder(self) -> Qt.SortOrder:  # noqa: N802 - Qt naming
        return self._sort_order

    def invalidate(self) -> None:
        self.beginResetModel()
        self._compute()
        self.endResetModel()

    def _compute(self) -> None:
        source = self.source()
        n = source.rowCount() if source is not None else 0
        keep = np.ones(n, dtype=bool)
        if n and self._text:
            if self._filter_column is None or not 0 <= self._filter_column < source.columnCount():
                texts = source.row_text()
            else:
                texts = source.column(self._filter_column).search_text()
            keep &= pd.Series(texts, dtype=object).str.contains(self._text, regex=False).to_numpy(dtype=bool)
        if self._only is not None:
            only = np.zeros(n, dtype=bool)
            only[self._only[(self._only >= 0) & (self._only < n)]] = True
            keep &= only
        rows = np.flatnonzero(keep)
        if n and 0 <= self._sort_column < source.columnCount():
            keys, missing = source.column(self._sort_column).sort_keys()
            present, absent = rows[~missing[rows]], rows[missing[rows]]
            k = keys[present]
            if self._sort_order == Qt.SortOrder.DescendingOrder:
                k = -k
            rows = np.concatenate([present[np.argsort(k, kind="stable")], absent])
        self._columns = source.columnCount() if source is not None else 0
        self._order = rows.astype(np.int64)
        self._inverse = np.full(n, -1, dtype=np.int64)
        self._inverse[self._order] = np.arange(len(self._order))

    # ------------------------------------------------------------------ mapping

    def source_rows(self, proxy_rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Data-frame positions of proxy rows."""
        rows = np.asarray(proxy_rows, dtype=np.int64)
        return self._order[rows] if len(rows) else np.empty(0, dtype=np.int64)

    def hidden_rows(self, source_rows: np.ndarray) -> np.ndarray:
        """The given data-frame positions that the filter leaves out."""
        rows = np.asarray(source_rows, dtype=np.int64)
        inside = (rows >= 0) & (rows < len(self._inverse))
        hidden = np.ones(len(rows), dtype=bool)
        hidden[inside] = self._inverse[rows[inside]] < 0
        return rows[hidden]

    def proxy_rows(self, source_rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Proxy rows of data-frame positions; rows filtered out are left out."""
        rows = np.asarray(source_rows, dtype=np.int64)
        rows = rows[(rows >= 0) & (rows < len(self._inverse))]
        found = self._inverse[rows]
        return found[found >= 0]

    def mapToSource(self, proxyIndex: QModelIndex) -> QModelIndex:
        if not proxyIndex.isValid() or proxyIndex.row() >= len(self._order):
            return QModelIndex()
        return self.source().index(int(self._order[proxyIndex.row()]), proxyIndex.column())

    def mapFromSource(self, sourceIndex: QModelIndex) -> QModelIndex:
        if not sourceIndex.isValid() or sourceIndex.row() >= len(self._inverse):
            return QModelIndex()
        row = int(self._inverse[sourceIndex.row()])
        return self.createIndex(row, sourceIndex.column()) if row >= 0 else QModelIndex()

    def index(self, row: int, column: int, parent: QModelIndex = QModelIndex()) -> QModelIndex:
        if parent.isValid() or not (0 <= row < len(self._order)) or not (0 <= column < self._columns):
            return QModelIndex()
        return self.createIndex(row, column)

    def parent(self, index: QModelIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        return QModelIndex()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._order)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else self._columns

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._order):
            return None
        return self.source().data(self.source().index(int(self._order[index.row()]), index.column()), role)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Vertical and 0 <= section < len(self._order):
            section = int(self._order[section])
        return self.source().headerData(section, orientation, role) if self.source() is not None else None

    _FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        return self._FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags

    def hasChildren(self, parent: QModelIndex = QModelIndex()) -> bool:
        return not parent.isValid() and len(self._order) > 0


class AttributeTable(QWidget):
    """A layer's attributes, with a filter, sorting by any column and the shared selection."""

    rows_shown_changed = Signal(int)

    def __init__(self, selection: Selection | None = None, layer: Layer | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.selection = selection if selection is not None else Selection()
        self._layer: Layer | None = None
        self._syncing = False

        self.model = FrameModel(parent=self)
        self.proxy = FrameProxy(self)
        self.proxy.setSourceModel(self.model)
        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        header = self.view.horizontalHeader()
        header.setSortIndicatorClearable(True)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        header.setHighlightSections(False)
        header.setSectionsMovable(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.view.setSortingEnabled(True)
        rows = self.view.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 6)
        rows.setDefaultAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.view.selectionModel().selectionChanged.connect(self._view_selection_changed)
        self.proxy.modelReset.connect(self._proxy_reset)

        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter features…")
        self.filter_edit.setClearButtonEnabled(True)
        self.column_combo = QComboBox(self)
        self.column_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.column_combo.setMinimumContentsLength(14)
        self.column_combo.setMaxVisibleItems(20)
        self.column_combo.setToolTip("Search in all columns or in one")
        self.selected_only = QToolButton(self)
        self.selected_only.setText("Selected only")
        self.selected_only.setCheckable(True)
        self.selected_only.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.selected_only.setToolTip("Show only the selected features")
        self.clear_button = QToolButton(self)
        self.clear_button.setText("Clear selection")
        self.clear_button.setToolTip("Deselect all features of this layer")
        self.status_label = QLabel(self)
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self.apply_filter)
        self.filter_edit.textChanged.connect(lambda *_: self._filter_timer.start())
        self.filter_edit.returnPressed.connect(self.apply_filter)
        self.column_combo.currentIndexChanged.connect(lambda *_: self.apply_filter())
        self.selected_only.toggled.connect(lambda *_: self._update_only_rows())
        self.clear_button.clicked.connect(self._clear_selection)

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 4, 4, 0)
        bar.setSpacing(6)
        bar.addWidget(self.filter_edit, 2)
        bar.addWidget(QLabel("in", self))
        bar.addWidget(self.column_combo, 1)
        bar.addWidget(self.selected_only)
        bar.addWidget(self.clear_button)
        bar.addStretch(0)
        bar.addWidget(self.status_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)

        _bind(self, self.selection.changed, self._shared_selection_changed)
        self.set_layer(layer)

    # ------------------------------------------------------------------ layer

    @property
    def layer(self) -> Layer | None:
        return self._layer

    def set_layer(self, layer: Layer | None) -> None:
        """Show another layer's attributes (None: an empty table)."""
        if self._layer is not None:
            self._layer.events.name.disconnect(self._update_status)
        self._layer = layer
        if layer is not None:
            layer.events.name.connect(self._update_status)
        self._syncing = True
        try:
            self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
            self.proxy._sort_column = -1
            self.proxy._only = None
            self.proxy._text, self.proxy._filter_column = "", None
            self.selected_only.blockSignals(True)
            self.selected_only.setChecked(False)
            self.selected_only.blockSignals(False)
            self.model.set_frame(attribute_frame(layer.data) if layer is not None else pd.DataFrame())
        finally:
            self._syncing = False
        self.column_combo.blockSignals(True)
        self.column_combo.clear()
        self.column_combo.addItem("all columns", None)
        for k, name in enumerate(self.model.column_names()):
            self.column_combo.addItem(name, k)
        self.column_combo.blockSignals(False)
        self.filter_edit.blockSignals(True)
        self.filter_edit.clear()
        self.filter_edit.blockSignals(False)
        self.proxy.set_text_filter("")
        self._fit_columns()
        self.setWindowTitle(f"Attribute table — {layer.name}" if layer is not None else "Attribute table")
        self._show_shared_selection(scroll=True)

    def refresh(self) -> None:
        """Re-read the layer's data (after a loader or a model replaced it)."""
        self.set_layer(self._layer)

    def _fit_columns(self, sample: int = 200, lo: int = 48, hi: int = 280) -> None:
        """Column widths from the header and a spread of rows, including each column's widest value."""
        metrics = QFontMetrics(self.view.font())
        header_metrics = QFontMetrics(self.view.horizontalHeader().font())
        n = self.model.rowCount()
        rows = np.unique(np.linspace(0, n - 1, min(sample, n)).astype(int)) if n else np.empty(0, dtype=int)
        header = self.view.horizontalHeader()
        for col, name in enumerate(self.model.column_names()):
            width = header_metrics.horizontalAdvance(name) + 28
            column = self.model.column(col)
            widest = self._widest_row(column)
            candidates = rows.tolist() + ([widest] if widest is not None else [])
            for row in candidates:
                width = max(width, metrics.horizontalAdvance(column.text(row)) + 14)
                if width >= hi:
                    break
            header.resizeSection(col, max(lo, min(hi, width)))

    @staticmethod
    def _widest_row(column: _Column) -> int | None:
        if not len(column.values):
            return None
        if column.numeric:
            keys, missing = column.sort_keys()
            magnitude = np.where(missing, -1.0, np.abs(np.asarray(keys, dtype=float)))
            return int(np.argmax(magnitude))
        series = column.series
        if not pd.api.types.is_string_dtype(series.dtype):
            return None
        lengths = series.str.len()
        return int(lengths.fillna(-1).to_numpy().argmax()) if lengths.notna().any() else None

    # ------------------------------------------------------------------ filtering and sorting

    def filter_column(self) -> int | None:
        data = self.column_combo.currentData()
        return int(data) if data is not None else None

    def apply_filter(self) -> None:
        self._filter_timer.stop()
        self.proxy.set_text_filter(self.filter_edit.text(), self.filter_column())

    def set_filter(self, text: str, column: str | None = None) -> None:
        """Filter now (without the typing delay), in one column by name or in all."""
        self.column_combo.blockSignals(True)
        self.column_combo.setCurrentIndex(0 if column is None else self.column_combo.findText(column))
        self.column_combo.blockSignals(False)
        self.filter_edit.blockSignals(True)
        self.filter_edit.setText(text)
        self.filter_edit.blockSignals(False)
        self.apply_filter()

    def sort_by(self, column: str, descending: bool = False) -> None:
        """Sort by a column name, as a click on its header does."""
        col = self.model.column_names().index(column)
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.view.sortByColumn(col, order)

    def shown_rows(self) -> np.ndarray:
        """Data-frame positions of the rows shown, top to bottom."""
        return self.proxy.source_rows(np.arange(self.proxy.rowCount()))

    def cell(self, row: int, column: str) -> str:
        """Text shown in a (proxy) row of a column."""
        col = self.model.column_names().index(column)
        return str(self.proxy.data(self.proxy.index(row, col)))

    def _proxy_reset(self) -> None:
        self._show_shared_selection(scroll=False)
        self.rows_shown_changed.emit(self.proxy.rowCount())

    def _update_only_rows(self) -> None:
        if self.selected_only.isChecked():
            self.proxy.set_only_rows(self._shared_rows())
        elif self.proxy._only is not None:
            self.proxy.set_only_rows(None)

    # ------------------------------------------------------------------ selection

    def _shared_rows(self) -> np.ndarray:
        if self._layer is not None and self.selection.layer == self._layer.name:
            return self.selection.rows
        return np.empty(0, dtype=np.int64)

    def selected_proxy_rows(self) -> np.ndarray:
        """Rows selected in the table, as shown (read from the selection ranges, not cell by cell)."""
        ranges = [(r.top(), r.bottom()) for r in self.view.selectionModel().selection()]
        if not ranges:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate([np.arange(a, b + 1) for a, b in ranges]))

    def selected_rows(self) -> np.ndarray:
        """Data-frame positions of the rows selected in the table."""
        return np.sort(self.proxy.source_rows(self.selected_proxy_rows()))

    def select_rows(self, proxy_rows: Sequence[int]) -> None:
        """Select table rows (proxy rows, as shown), as a user would by clicking."""
        self.view.selectionModel().select(self._item_selection(np.asarray(proxy_rows, dtype=np.int64)),
                                          QItemSelectionModel.SelectionFlag.ClearAndSelect
                                          | QItemSelectionModel.SelectionFlag.Rows)

    def _item_selection(self, proxy_rows: np.ndarray) -> QItemSelection:
        selection = QItemSelection()
        if not len(proxy_rows) or not self.proxy.columnCount():
            return selection
        rows = np.unique(proxy_rows)
        breaks = np.flatnonzero(np.diff(rows) != 1)
        starts = np.concatenate([[rows[0]], rows[breaks + 1]])
        ends = np.concatenate([rows[breaks], [rows[-1]]])
        last = self.proxy.columnCount() - 1
        for a, b in zip(starts.tolist(), ends.tolist()):
            selection.select(self.proxy.index(a, 0), self.proxy.index(b, last))
        return selection

    def _view_selection_changed(self, *_: Any) -> None:
        if self._syncing or self._layer is None:
            return
        chosen = self.selected_rows()
        hidden = self.proxy.hidden_rows(self._shared_rows())
        self._syncing = True
        try:
            self.selection.select(self._layer.name, np.union1d(chosen, hidden))
        finally:
            self._syncing = False
        self._update_status()

    def _shared_selection_changed(self, layer: str, rows: Any) -> None:
        if self._syncing:
            return
        if self.selected_only.isChecked():
            self._update_only_rows()
        self._show_shared_selection(scroll=True)

    def _show_shared_selection(self, scroll: bool) -> None:
        proxy_rows = self.proxy.proxy_rows(self._shared_rows())
        self._syncing = True
        try:
            model = self.view.selectionModel()
            if len(proxy_rows):
                model.select(self._item_selection(proxy_rows), QItemSelectionModel.SelectionFlag.ClearAndSelect
                             | QItemSelectionModel.SelectionFlag.Rows)
                first = int(proxy_rows.min())
                model.setCurrentIndex(self.proxy.index(first, max(0, self.view.currentIndex().column())),
                                      QItemSelectionModel.SelectionFlag.NoUpdate)
                if scroll:
                    self.view.scrollTo(self.proxy.index(first, 0), QAbstractItemView.ScrollHint.PositionAtCenter)
            else:
                model.clearSelection()
        finally:
            self._syncing = False
        self._update_status()

    def _clear_selection(self) -> None:
        if self._layer is not None and self.selection.layer == self._layer.name:
            self.selection.clear()

    def _update_status(self, *_: Any) -> None:
        total = self.model.rowCount()
        selected = len(self._shared_rows())
        shown = self.proxy.rowCount()
        parts = [f"{total:,} features", f"{selected:,} selected"]
        if shown != total:
            parts.append(f"{shown:,} shown")
        self.status_label.setText(" · ".join(parts) if self._layer is not None else "no layer")
        self.clear_button.setEnabled(selected > 0)

    def sizeHint(self) -> QSize:
        return QSize(900, 420)
