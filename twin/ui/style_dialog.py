"""The style dialog: edit how a layer is drawn (one colour, a colour per category, or classes on a ramp).

The dialog only builds a new style model; nothing is drawn here.  OK or Apply
assigns it to ``layer.style``, whose event makes every view redraw.  The
previews use the same functions the renderer does (``auto_breaks``,
``auto_categories``, ``ramp_colours``), so what is listed is what is drawn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QLinearGradient, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from twin.geo.layers import Layer
from twin.geo.style import (
    BREAK_METHODS,
    MAX_CLASSES,
    QUALITATIVE_RAMPS,
    RAMPS,
    CategorisedStyle,
    GraduatedStyle,
    SingleStyle,
    Style,
    _category_keys,
    auto_breaks,
    parse_colour,
    ramp_colours,
)

#: Most categories listed one by one; rarer values are drawn in the "other values" colour.
MAX_CATEGORIES = 30
KIND_LABELS = {"single": "Single colour", "categorised": "Categorised", "graduated": "Graduated"}
METHOD_LABELS = {"equal": "Equal interval", "quantile": "Quantile (equal count)"}
_ID_LIKE = re.compile(r"(^|[_:])(id|fid|uuid|ref|code)$", re.IGNORECASE)
_SWATCH = QSize(28, 14)


def _qcolor(hex_colour: str) -> QColor:
    r, g, b, a = parse_colour(hex_colour)
    return QColor(r, g, b, a)


def _hex(colour: QColor) -> str:
    text = f"#{colour.red():02x}{colour.green():02x}{colour.blue():02x}"
    return text + (f"{colour.alpha():02x}" if colour.alpha() != 255 else "")


def swatch_icon(colour: QColor, size: QSize = _SWATCH) -> QIcon:
    """A filled rectangle with a thin outline (a checkerboard shows through transparent colours)."""
    pix = QPixmap(size)
    pix.fill(Qt.GlobalColor.white)
    p = QPainter(pix)
    if colour.alpha() < 255:
        for x in range(0, size.width(), 4):
            for y in range(0, size.height(), 4):
                if (x // 4 + y // 4) % 2:
                    p.fillRect(x, y, 4, 4, QColor("#cccccc"))
    p.fillRect(pix.rect(), colour)
    p.setPen(QPen(QColor("#666666"), 1))
    p.drawRect(pix.rect().adjusted(0, 0, -1, -1))
    p.end()
    return QIcon(pix)


def ramp_icon(name: str, size: QSize = QSize(96, 14), reverse: bool = False) -> QIcon:
    """A ramp's colours as a gradient strip (blocks for qualitative ramps)."""
    pix = QPixmap(size)
    p = QPainter(pix)
    stops = ramp_colours(name, len(RAMPS[name]), reverse)
    if name in QUALITATIVE_RAMPS:
        step = size.width() / len(stops)
        for k, c in enumerate(stops):
            p.fillRect(int(k * step), 0, int(step) + 1, size.height(), QColor(*map(int, c)))
    else:
        gradient = QLinearGradient(0, 0, size.width(), 0)
        for k, c in enumerate(stops):
            gradient.setColorAt(k / max(1, len(stops) - 1), QColor(*map(int, c)))
        p.fillRect(pix.rect(), gradient)
    p.setPen(QPen(QColor("#666666"), 1))
    p.drawRect(pix.rect().adjusted(0, 0, -1, -1))
    p.end()
    return QIcon(pix)


def edge_decimals(edges: np.ndarray) -> int:
    """Decimals that tell class edges apart: none for whole numbers, more for narrow classes."""
    finite = edges[np.isfinite(edges)]
    if not len(finite) or np.all(finite == np.round(finite)):
        return 0
    widths = np.diff(finite)
    width = float(widths[widths > 0].min()) if np.any(widths > 0) else 1.0
    return int(min(6, max(1, np.ceil(-np.log10(width)) + 1)))


def format_edge(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if np.isfinite(value) else "—"


class ColourButton(QPushButton):
    """A button showing a colour; a click opens a colour picker (``picker`` can be replaced)."""

    colour_changed = Signal(str)

    def __init__(self, colour: str = "#6a9fd4", title: str = "Choose a colour", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.setIconSize(_SWATCH)
        self.picker: Callable[[QColor], QColor | None] = self._pick
        self._colour = "#000000"
        self.set_colour(colour)
        self.clicked.connect(self._clicked)

    @property
    def colour(self) -> str:
        return self._colour

    def set_colour(self, colour: str) -> None:
        self._colour = colour.lower()
        self.setIcon(swatch_icon(_qcolor(self._colour)))
        self.setText(self._colour)
        self.colour_changed.emit(self._colour)

    def _pick(self, initial: QColor) -> QColor | None:
        colour = QColorDialog.getColor(initial, self, self.title, QColorDialog.ColorDialogOption.ShowAlphaChannel)
        return colour if colour.isValid() else None

    def _clicked(self) -> None:
        chosen = self.picker(_qcolor(self._colour))
        if chosen is not None:
            self.set_colour(_hex(chosen))


class SymbolPreview(QWidget):
    """An area, a line and a point drawn with the chosen fill, outline and point size."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fill, self.stroke, self.stroke_width, self.point_size = "#6a9fd4", "#333333", 0.5, 6.0
        self.setMinimumSize(QSize(240, 80))
        self.setMaximumHeight(110)

    def set_symbol(self, fill: str, stroke: str, stroke_width: float, point_size: float) -> None:
        self.fill, self.stroke, self.stroke_width, self.point_size = fill, stroke, stroke_width, point_size
        self.update()

    def paintEvent(self, event: Any) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self.palette().color(self.backgroundRole()).lighter(104))
        fill, stroke = _qcolor(self.fill), _qcolor(self.stroke)
        pen = QPen(stroke, self.stroke_width) if self.stroke_width > 0 else QPen(Qt.PenStyle.NoPen)
        w, h = self.width(), self.height()
        cell = w / 3
        side = min(cell * 0.6, h * 0.6, 56.0)
        p.setPen(pen)
        p.setBrush(fill)
        p.drawRect(QRectF(cell / 2 - side / 2, h / 2 - side / 2, side, side))
        p.setPen(QPen(fill, max(2.0, self.stroke_width * 3), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.setBrush(Qt.BrushStyle.NoBrush)
        x0, y0 = cell * 1.5 - side / 2, h / 2 - side / 2
        path = QPointF(x0, y0 + side)
        path = QPainterPath(path)
        path.cubicTo(QPointF(x0 + side * 0.35, y0 - side * 0.2), QPointF(x0 + side * 0.6, y0 + side * 1.2),
                     QPointF(x0 + side, y0))
        p.drawPath(path)
        p.setPen(pen)
        p.setBrush(fill)
        r = self.point_size / 2
        p.drawEllipse(QPointF(cell * 2.5, h / 2), r, r)
        p.end()


# ----------------------------------------------------------------------------- field values


def layer_fields(layer: Layer) -> list[str]:
    """Attribute columns a style can use (a grid offers its cell ``value``)."""
    data = layer.data
    if isinstance(data, pd.DataFrame):
        geometry = getattr(data, "_geometry_column_name", None)
        return [str(c) for c in data.columns if c != geometry and not _is_geometry(data[c])]
    if data is not None and hasattr(data, "values"):
        return ["value"]
    return []


def _is_geometry(column: pd.Series) -> bool:
    return getattr(column.dtype, "name", "") == "geometry"


def field_values(layer: Layer, field: str) -> np.ndarray | pd.Series | None:
    """The values of one field (a grid's cells flattened), or None when the layer has no such field."""
    data = layer.data
    if isinstance(data, pd.DataFrame):
        return data[field] if field in data.columns else None
    if data is not None and hasattr(data, "values") and field == "value":
        values = np.asarray(data.values, dtype=float).ravel()
        nodata = getattr(data, "nodata", None)
        if nodata is not None and np.isfinite(nodata):
            values = np.where(values == nodata, np.nan, values)
        return values
    return None


def numeric_values(values: Any) -> np.ndarray | None:
    """Values as floats when most non-missing ones are numbers (OSM tags like height are text), else None."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).ravel())
    if pd.api.types.is_bool_dtype(series.dtype):
        return None
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    present = series.dropna()
    if not len(present):
        return None
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.notna().sum() < 0.8 * len(present):
        return None
    return numbers.to_numpy(dtype=float, na_value=np.nan)


def category_counts(values: Any, limit: int = MAX_CATEGORIES) -> tuple[list[tuple[str, int]], int]:
    """The ``limit`` most frequent values as category keys with their counts, in value order,
    and how many features hold any other (non-missing) value."""
    keys = _category_keys(values).dropna()
    counts = keys.value_counts(sort=True)
    kept = counts.iloc[:limit]
    rest = int(counts.iloc[limit:].sum())

    def order(key: str) -> tuple[int, float, str]:
        try:
            return 0, float(key), ""
        except ValueError:
            return 1, 0.0, key

    return sorted(((str(k), int(v)) for k, v in kept.items()), key=lambda kv: order(kv[0])), rest


# ----------------------------------------------------------------------------- dialog


class StyleDialog(QDialog):
    """Edit a layer's style; :meth:`build_style` gives the style the controls describe, :meth:`apply` sets it."""

    def __init__(self, layer: Layer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer = layer
        self.setWindowTitle(f"Layer style — {layer.name}")
        self._fields = layer_fields(layer)
        self._numeric_cache: dict[str, np.ndarray | None] = {}
        self._loading = True

        self.kind_combo = QComboBox(self)
        for kind, label in KIND_LABELS.items():
            self.kind_combo.addItem(label, kind)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self._single_page())
        self.pages.addWidget(self._categorised_page())
        self.pages.addWidget(self._graduated_page())
        self.kind_combo.currentIndexChanged.connect(self._kind_changed)

        outline = QGroupBox("Outline and symbols", self)
        self.stroke_button = ColourButton("#333333", "Outline colour", outline)
        self.stroke_width_spin = QDoubleSpinBox(outline)
        self.stroke_width_spin.setRange(0.0, 100.0)
        self.stroke_width_spin.setSingleStep(0.25)
        self.stroke_width_spin.setDecimals(2)
        self.stroke_width_spin.setSuffix(" px")
        self.point_size_spin = QDoubleSpinBox(outline)
        self.point_size_spin.setRange(0.5, 200.0)
        self.point_size_spin.setSingleStep(1.0)
        self.point_size_spin.setDecimals(1)
        self.point_size_spin.setSuffix(" px")
        outline_form = QFormLayout(outline)
        outline_form.addRow("Outline colour", self.stroke_button)
        outline_form.addRow("Outline width", self.stroke_width_spin)
        outline_form.addRow("Point size", self.point_size_spin)
        for signal in (self.fill_button.colour_changed, self.stroke_button.colour_changed,
                       self.stroke_width_spin.valueChanged, self.point_size_spin.valueChanged):
            signal.connect(self._update_preview)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                        | QDialogButtonBox.StandardButton.Apply, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        self.error_label = QLabel(self)
        self.error_label.setStyleSheet("color: #b3261e;")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        top = QFormLayout()
        top.addRow("Symbology", self.kind_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.pages, 1)
        layout.addWidget(outline)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.resize(520, 600)
        self.load_style(layer.style)

    # ------------------------------------------------------------------ pages

    def _single_page(self) -> QWidget:
        page = QWidget(self)
        self.fill_button = ColourButton("#6a9fd4", "Fill colour", page)
        self.preview = SymbolPreview(page)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Fill colour", self.fill_button)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(QLabel("Preview", page))
        layout.addWidget(self.preview)
        layout.addStretch(1)
        return page

    def _field_combo(self, parent: QWidget, fields: list[str]) -> QComboBox:
        combo = QComboBox(parent)
        combo.setMaxVisibleItems(20)
        combo.addItems(fields)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(18)
        return combo

    def _ramp_combo(self, parent: QWidget, names: list[str]) -> QComboBox:
        combo = QComboBox(parent)
        combo.setIconSize(QSize(96, 14))
        for name in names:
            combo.addItem(ramp_icon(name), name, name)
        return combo

    def _preview_table(self, parent: QWidget, headers: list[str]) -> QTableWidget:
        table = QTableWidget(0, len(headers), parent)
        table.setHorizontalHeaderLabels(headers)
        table.verticalHeader().hide()
        table.setIconSize(_SWATCH)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setAlternatingRowColors(True)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(len(headers) - 1, QHeaderView.ResizeMode.ResizeToContents)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
        return table

    def _categorised_page(self) -> QWidget:
        page = QWidget(self)
        self.cat_field_combo = self._field_combo(page, self._fields)
        ramps = [n for n in RAMPS if n in QUALITATIVE_RAMPS] + [n for n in RAMPS if n not in QUALITATIVE_RAMPS]
        self.cat_ramp_combo = self._ramp_combo(page, ramps)
        self.default_button = ColourButton("#cccccc", "Colour of other values", page)
        self.classify_button = QPushButton("Classify", page)
        self.categories_table = self._preview_table(page, ["Colour", "Value", "Features"])
        self.categories_table.cellDoubleClicked.connect(self._pick_category_colour)
        self.categories_note = QLabel(page)
        self.categories_note.setStyleSheet("color: #666666;")
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Field", self.cat_field_combo)
        form.addRow("Colour ramp", self.cat_ramp_combo)
        row = QHBoxLayout()
        row.addWidget(self.default_button)
        row.addStretch(1)
        row.addWidget(self.classify_button)
        form.addRow("Other values", row)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.categories_table, 1)
        layout.addWidget(self.categories_note)
        self.cat_field_combo.currentIndexChanged.connect(self._classify)
        self.cat_ramp_combo.currentIndexChanged.connect(self._classify)
        self.classify_button.clicked.connect(self._classify)
        self._categories: dict[str, str] = {}
        return page

    def _graduated_page(self) -> QWidget:
        page = QWidget(self)
        numeric = [f for f in self._fields if self._numeric(f) is not None]
        self.grad_field_combo = self._field_combo(page, numeric)
        ramps = [n for n in RAMPS if n not in QUALITATIVE_RAMPS]
        self.ramp_combo = self._ramp_combo(page, ramps)
        self.reverse_check = QCheckBox("Reverse", page)
        self.method_combo = QComboBox(page)
        for method in BREAK_METHODS:
            self.method_combo.addItem(METHOD_LABELS.get(method, method), method)
        self.classes_spin = QSpinBox(page)
        self.classes_spin.setRange(1, MAX_CLASSES)
        self.classes_spin.setValue(5)
        self.classes_table = self._preview_table(page, ["Colour", "Range", "Features"])
        self.classes_note = QLabel(page)
        self.classes_note.setStyleSheet("color: #666666;")
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Field", self.grad_field_combo)
        ramp_row = QHBoxLayout()
        ramp_row.addWidget(self.ramp_combo, 1)
        ramp_row.addWidget(self.reverse_check)
        form.addRow("Colour ramp", ramp_row)
        form.addRow("Mode", self.method_combo)
        form.addRow("Classes", self.classes_spin)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.classes_table, 1)
        layout.addWidget(self.classes_note)
        for signal in (self.grad_field_combo.currentIndexChanged, self.ramp_combo.currentIndexChanged,
                       self.method_combo.currentIndexChanged, self.classes_spin.valueChanged,
                       self.reverse_check.toggled):
            signal.connect(self._update_classes)
        return page

    # ------------------------------------------------------------------ values

    def _numeric(self, field: str) -> np.ndarray | None:
        if field not in self._numeric_cache:
            values = field_values(self.layer, field)
            self._numeric_cache[field] = None if values is None else numeric_values(values)
        return self._numeric_cache[field]

    @staticmethod
    def _choose(combo: QComboBox, value: str | None) -> None:
        if value is None:
            return
        found = combo.findData(value)
        if found < 0:
            found = combo.findText(value)
        if found < 0:
            combo.addItem(value, value)
            found = combo.count() - 1
        combo.setCurrentIndex(found)

    def _default_categorised_field(self) -> str | None:
        """A text field with a handful of values (building type, road class), the richest such one."""
        data = self.layer.data
        if not isinstance(data, pd.DataFrame):
            return self._fields[0] if self._fields else None
        best: tuple[bool, int, str] | None = None
        for field in self._fields:
            if _ID_LIKE.search(field) or field.startswith("osm_"):
                continue
            column = data[field]
            if not len(column) or column.notna().mean() < 0.5:
                continue
            distinct = int(column.nunique(dropna=True))
            if 2 <= distinct <= MAX_CATEGORIES:
                score = (not pd.api.types.is_numeric_dtype(column.dtype), distinct, field)
                if best is None or score[:2] > best[:2]:
                    best = score
        if best is not None:
            return best[2]
        return self._fields[0] if self._fields else None

    def _default_graduated_field(self) -> str | None:
        candidates = [self.grad_field_combo.itemText(i) for i in range(self.grad_field_combo.count())]
        for field in candidates:
            if not _ID_LIKE.search(field):
                return field
        return candidates[0] if candidates else None

    # ------------------------------------------------------------------ loading and building

    def load_style(self, style: Style) -> None:
        """Set every control from a style (the layer's current one when the dialog opens)."""
        self._loading = True
        try:
            self.stroke_button.set_colour(style.stroke)
            self.stroke_width_spin.setValue(style.stroke_width)
            self.point_size_spin.setValue(style.point_size)
            if isinstance(style, SingleStyle):
                self.fill_button.set_colour(style.fill)
            if isinstance(style, CategorisedStyle):
                self._choose(self.cat_field_combo, style.field)
                self.default_button.set_colour(style.default)
                self._categories = dict(style.categories)
            else:
                self._choose(self.cat_field_combo, self._default_categorised_field())
            if isinstance(style, GraduatedStyle):
                self._choose(self.grad_field_combo, style.field)
                self._choose(self.ramp_combo, style.ramp)
                self.reverse_check.setChecked(style.reverse)
                self._choose(self.method_combo, style.method)
                self.classes_spin.setValue(style.n_classes if style.breaks is None else len(style.breaks) - 1)
                self._nodata = style.nodata
            else:
                self._choose(self.grad_field_combo, self._default_graduated_field())
                self._nodata = "#00000000"
            self.kind_combo.setCurrentIndex(self.kind_combo.findData(style.kind))
            self.pages.setCurrentIndex(self.kind_combo.currentIndex())
        finally:
            self._loading = False
        if isinstance(style, CategorisedStyle):
            self._show_categories()
        else:
            self._classify()
        self._update_classes()

    def _update_preview(self, *_: Any) -> None:
        self.preview.set_symbol(self.fill_button.colour, self.stroke_button.colour, self.stroke_width_spin.value(),
                                self.point_size_spin.value())

    def _kind_changed(self, index: int) -> None:
        self.pages.setCurrentIndex(index)
        self.error_label.hide()

    def kind(self) -> str:
        return str(self.kind_combo.currentData())

    def set_kind(self, kind: str) -> None:
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))

    def build_style(self) -> Style:
        """The style the controls describe (validated by the style model)."""
        common = {"stroke": self.stroke_button.colour, "stroke_width": self.stroke_width_spin.value(),
                  "point_size": self.point_size_spin.value()}
        kind = self.kind()
        if kind == "single":
            return SingleStyle(fill=self.fill_button.colour, **common)
        if kind == "categorised":
            field = self.cat_field_combo.currentText()
            if not field:
                raise ValueError("choose a field to categorise by")
            return CategorisedStyle(field=field, categories=dict(self._categories),
                                    default=self.default_button.colour, **common)
        field = self.grad_field_combo.currentText()
        if not field:
            raise ValueError("choose a numeric field for graduated classes")
        return GraduatedStyle(field=field, ramp=str(self.ramp_combo.currentData()),
                              reverse=self.reverse_check.isChecked(), method=str(self.method_combo.currentData()),
                              n_classes=self.classes_spin.value(), nodata=self._nodata, **common)

    def apply(self) -> bool:
        """Give the layer the edited style; False (with the reason shown) when it is not valid."""
        try:
            style = self.build_style()
        except ValueError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return False
        self.error_label.hide()
        self.layer.style = style
        return True

    def accept(self) -> None:
        if self.apply():
            super().accept()

    # ------------------------------------------------------------------ categorised preview

    def _classify(self, *_: Any) -> None:
        """Fill the categories from the field's distinct values, coloured along the chosen ramp."""
        if self._loading:
            return
        field = self.cat_field_combo.currentText()
        values = field_values(self.layer, field) if field else None
        if values is None:
            self._categories, self._counts, self._other = {}, {}, 0
        else:
            kept, rest = category_counts(values)
            colours = ramp_colours(str(self.cat_ramp_combo.currentData()), len(kept))
            self._categories = {key: _hex(QColor(*map(int, c))) for (key, _), c in zip(kept, colours)}
            self._counts, self._other = dict(kept), rest
        self._fill_categories()

    def _show_categories(self) -> None:
        field = self.cat_field_combo.currentText()
        values = field_values(self.layer, field) if field else None
        self._counts, self._other = {}, 0
        if values is not None:
            keys = _category_keys(values).dropna()
            counts = keys.value_counts()
            self._counts = {k: int(counts.get(k, 0)) for k in self._categories}
            self._other = int(counts[~counts.index.isin(list(self._categories))].sum())
        self._fill_categories()

    def _fill_categories(self) -> None:
        table = self.categories_table
        rows = list(self._categories.items())
        table.setRowCount(len(rows) + 1)
        for r, (key, colour) in enumerate(rows):
            self._set_row(table, r, colour, key, self._counts.get(key))
        self._set_row(table, len(rows), self.default_button.colour, "other values", self._other, italic=True)
        self.categories_note.setText(
            f"{len(rows)} categories" + (f"; values beyond the {MAX_CATEGORIES} most frequent are drawn as "
                                         f"“other values”" if self._other and len(rows) >= MAX_CATEGORIES else ""))

    @staticmethod
    def _set_row(table: QTableWidget, row: int, colour: str, label: str, count: int | None,
                 italic: bool = False) -> None:
        swatch = QTableWidgetItem(swatch_icon(_qcolor(colour)), "")
        swatch.setData(Qt.ItemDataRole.UserRole, colour)
        text = QTableWidgetItem(label)
        number = QTableWidgetItem("" if count is None else f"{count:,}")
        number.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if italic:
            font = text.font()
            font.setItalic(True)
            text.setFont(font)
        for col, item in enumerate((swatch, text, number)):
            table.setItem(row, col, item)

    def _pick_category_colour(self, row: int, column: int) -> None:
        keys = list(self._categories)
        button = self.default_button
        if row >= len(keys):
            button.click()
            self._fill_categories()
            return
        chosen = button.picker(_qcolor(self._categories[keys[row]]))
        if chosen is not None:
            self.set_category_colour(keys[row], _hex(chosen))

    def set_category_colour(self, key: str, colour: str) -> None:
        """Recolour one category (as a double click on its swatch does)."""
        self._categories[key] = colour
        self._fill_categories()

    def categories(self) -> dict[str, str]:
        return dict(self._categories)

    # ------------------------------------------------------------------ graduated preview

    def class_edges(self) -> np.ndarray | None:
        """The class edges the graduated settings give for the layer's values (None without values)."""
        values = self._numeric(self.grad_field_combo.currentText()) if self.grad_field_combo.currentText() else None
        if values is None:
            return None
        return auto_breaks(values, str(self.method_combo.currentData()), self.classes_spin.value())

    def _update_classes(self, *_: Any) -> None:
        if self._loading:
            return
        table = self.classes_table
        field = self.grad_field_combo.currentText()
        values = self._numeric(field) if field else None
        edges = self.class_edges()
        if values is None or edges is None:
            table.setRowCount(0)
            self.classes_note.setText("no numeric values to classify" if field else "this layer has no numeric field")
            return
        n = len(edges) - 1
        colours = ramp_colours(str(self.ramp_combo.currentData()), n, self.reverse_check.isChecked())
        finite = values[np.isfinite(values)]
        index = np.searchsorted(edges[1:-1], finite, side="right")
        counts = np.bincount(index, minlength=n)
        table.setRowCount(n)
        decimals = edge_decimals(edges)
        for k in range(n):
            label = f"{format_edge(edges[k], decimals)} – {format_edge(edges[k + 1], decimals)}"
            self._set_row(table, k, _hex(QColor(*map(int, colours[k]))), label, int(counts[k]))
        missing = len(values) - len(finite)
        note = f"{n} classes over {len(finite):,} values"
        if n < self.classes_spin.value():
            note += f" (fewer than {self.classes_spin.value()}: repeated values share class edges)"
        if missing:
            note += f"; {missing:,} without a value are not drawn"
        self.classes_note.setText(note)
