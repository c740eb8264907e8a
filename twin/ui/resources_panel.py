"""The natural-resources panel: land-class areas (Third National Land Survey classes) as bars and a table.

The panel reads a :class:`~twin.geo.landclass.LandClassAreas` result, and
optionally a per-district table, and only shows them: a bar per class in its
map colour, the same numbers in a table with the total and the closure error
(boundary area minus the class areas, a check that the classes cover the city
once), and a CSV export of what is shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from twin.fileio import atomic_write
from twin.geo.landclass import UNCLASSIFIED, UNCLASSIFIED_COLOR, LandClassAreas, load_land_classes

#: Area units offered, with their size in square metres and the decimals shown.
UNITS: dict[str, tuple[float, int]] = {"km²": (1e6, 3), "ha": (1e4, 1), "m²": (1.0, 0)}
WHOLE_CITY = "Whole city"
ROW_COLUMNS = ["code", "name_zh", "name_en", "area_m2", "share", "color"]


def format_area(area_m2: float, unit: str) -> str:
    """An area in a unit with thousands separators (``1,543.008`` ha style)."""
    size, decimals = UNITS[unit]
    value = area_m2 / size
    text = f"{value:,.{decimals}f}"
    return "0" if float(text.replace(",", "")) == 0 and area_m2 == 0 else text


def format_share(share: float) -> str:
    return f"{share * 100:.1f} %"


def _swatch(colour: str, size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(colour))
    p = QPainter(pix)
    p.setPen(QPen(QColor(0, 0, 0, 90), 1))
    p.drawRect(0, 0, size - 1, size - 1)
    p.end()
    return QIcon(pix)


def class_colours(classes: pd.DataFrame | None = None) -> dict[str, str]:
    """Colour of each class code (the class table's), plus the unclassified grey."""
    table = classes if classes is not None else load_land_classes()
    colours = dict(zip(table["code"].astype(str), table["color"].astype(str)))
    colours[UNCLASSIFIED] = UNCLASSIFIED_COLOR
    return colours


def district_rows(districts: pd.DataFrame, district: str, classes: pd.DataFrame) -> pd.DataFrame:
    """One district's class rows, in class-table order, with names and shares filled in."""
    part = districts.loc[districts["district"].astype(str) == district]
    areas = part.groupby(part["code"].astype(str))["area_m2"].sum()
    codes = list(classes["code"].astype(str))
    if UNCLASSIFIED in areas.index:
        codes.append(UNCLASSIFIED)
    names = {str(c): (zh, en) for c, zh, en in zip(classes["code"], classes["name_zh"], classes["name_en"])}
    names[UNCLASSIFIED] = ("未分类", "Unclassified")
    rows = pd.DataFrame({"code": codes,
                         "name_zh": [names.get(c, ("", c))[0] for c in codes],
                         "name_en": [names.get(c, ("", c))[1] for c in codes],
                         "area_m2": [float(areas.get(c, 0.0)) for c in codes]})
    total = rows["area_m2"].sum()
    rows["share"] = rows["area_m2"] / total if total > 0 else 0.0
    return rows


def _blend(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` mixed with ``t`` of ``b`` (muted text that follows light and dark palettes)."""
    return QColor(round(a.red() * (1 - t) + b.red() * t), round(a.green() * (1 - t) + b.green() * t),
                  round(a.blue() * (1 - t) + b.blue() * t))


class LandClassChart(QWidget):
    """Horizontal bars of class areas: Chinese and English name, a bar in the class colour, area and share."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows = pd.DataFrame(columns=ROW_COLUMNS)
        self._unit = "km²"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.Base)

    def set_rows(self, rows: pd.DataFrame, unit: str) -> None:
        self._rows, self._unit = rows.reset_index(drop=True), unit
        self.updateGeometry()
        self.update()

    def _row_height(self) -> int:
        return QFontMetrics(self.font()).height() + QFontMetrics(self._small_font()).height() + 8

    def _small_font(self) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        return font

    def sizeHint(self) -> QSize:
        return QSize(560, 12 + len(self._rows) * self._row_height())

    def minimumSizeHint(self) -> QSize:
        return QSize(320, self.sizeHint().height())

    def paintEvent(self, event: Any) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rows = self._rows
        if not len(rows):
            p.setPen(self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No land-class areas")
            return
        font, small = QFont(self.font()), self._small_font()
        fm, fm_small = QFontMetrics(font), QFontMetrics(small)
        text = self.palette().color(QPalette.ColorRole.Text)
        muted = _blend(text, self.palette().color(QPalette.ColorRole.Base), 0.45)
        width, row_h, margin = self.width(), self._row_height(), 10

        label_w = max(max(fm.horizontalAdvance(str(z)) for z in rows["name_zh"]),
                      max(fm_small.horizontalAdvance(str(e)) for e in rows["name_en"]))
        label_w = int(min(label_w + 8, max(110, width * 0.34)))
        values = [f"{format_area(a, self._unit)} {self._unit}" for a in rows["area_m2"]]
        shares = [format_share(s) for s in rows["share"]]
        value_w = max(fm.horizontalAdvance(v) for v in values) + 6
        share_w = fm.horizontalAdvance("100.0 %") + 6
        bar_x = margin + 16 + label_w
        bar_w = max(20, width - bar_x - value_w - share_w - 2 * margin)
        top_area = float(rows["area_m2"].max()) or 1.0

        for k, row in rows.iterrows():
            y = 6 + k * row_h
            colour = QColor(str(row["color"]))
            p.fillRect(QRectF(margin, y + 5, 10, 10), colour)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(QColor(0, 0, 0, 80), 1))
            p.drawRect(QRectF(margin + 0.5, y + 5.5, 9, 9))
            p.setFont(font)
            p.setPen(text)
            p.drawText(QRectF(margin + 16, y + 2, label_w, fm.height()), Qt.AlignmentFlag.AlignLeft
                       | Qt.AlignmentFlag.AlignVCenter, str(row["name_zh"]))
            p.setFont(small)
            p.setPen(muted)
            english = fm_small.elidedText(str(row["name_en"]), Qt.TextElideMode.ElideRight, label_w)
            p.drawText(QRectF(margin + 16, y + 2 + fm.height(), label_w, fm_small.height()),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, english)

            area = float(row["area_m2"])
            length = bar_w * area / top_area
            bar = QRectF(bar_x, y + 4, max(length, 1.0 if area > 0 else 0.0), row_h - 12)
            p.setPen(Qt.PenStyle.NoPen)
            p.fillRect(QRectF(bar_x, y + 4, bar_w, row_h - 12), self.palette().color(QPalette.ColorRole.AlternateBase))
            if area > 0:
                p.setBrush(colour)
                p.setPen(QPen(colour.darker(125), 1))
                p.drawRoundedRect(bar.adjusted(0.5, 0.5, -0.5, -0.5), 2, 2)
            p.setFont(font)
            p.setPen(text if area > 0 else muted)
            value_rect = QRectF(bar_x + bar_w + 6, y, value_w, row_h - 4)
            p.drawText(value_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, values[k])
            p.setPen(muted)
            p.drawText(QRectF(value_rect.right(), y, share_w, row_h - 4),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, shares[k])


def _save_dialog(parent: QWidget, suggestion: str) -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, "Export land-class areas", suggestion, "CSV (*.csv)")
    return path or None


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a CSV in one step (a temporary file renamed over the target); UTF-8 with BOM for spreadsheets."""
    path = Path(path)
    with atomic_write(path, encoding="utf-8-sig", newline="") as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")
    return path


class ResourcesPanel(QWidget):
    """Land-class areas of the city (or of one district): bars, table, total and closure error, CSV export.

    ``ask_path(suggested_name) -> path | None`` chooses the export file; tests
    and scripts may replace it.
    """

    def __init__(self, areas: LandClassAreas | None = None, districts: pd.DataFrame | None = None,
                 classes: pd.DataFrame | None = None, city_name: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classes = classes if classes is not None else load_land_classes()
        self.colours = class_colours(self.classes)
        self.ask_path: Callable[[str], str | None] = lambda suggestion: _save_dialog(self, suggestion)
        self.city_name = city_name
        self._areas: LandClassAreas | None = None
        self._districts: pd.DataFrame | None = None
        self._rows = pd.DataFrame(columns=ROW_COLUMNS)
        self._closure: float | None = None
        self._boundary: float | None = None

        self.title_label = QLabel("Land classes <span style='color:#666'>· Third National Land Survey (三调) "
                                  "first-level classes</span>", self)
        title_font = self.title_label.font()
        title_font.setBold(True)
        self.title_label.setFont(title_font)
        self.title_label.setWordWrap(True)
        self.district_label = QLabel("District", self)
        self.district_combo = QComboBox(self)
        self.district_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.unit_combo = QComboBox(self)
        self.unit_combo.addItems(list(UNITS))
        self.export_button = QPushButton("Export CSV…", self)
        self.export_button.setToolTip("Save the table shown as a CSV file (UTF-8)")
        self.chart = LandClassChart(self)
        self.table = QTableWidget(0, 5, self)
        self.table.setHorizontalHeaderLabels(["Code", "中文", "English", "Area", "Share"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setIconSize(QSize(12, 12))
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        for col, mode in enumerate((QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.ResizeToContents,
                                    QHeaderView.ResizeMode.Stretch, QHeaderView.ResizeMode.ResizeToContents,
                                    QHeaderView.ResizeMode.ResizeToContents)):
            header.setSectionResizeMode(col, mode)
        for col in (3, 4):
            self.table.horizontalHeaderItem(col).setTextAlignment(Qt.AlignmentFlag.AlignRight
                                                                  | Qt.AlignmentFlag.AlignVCenter)
        self.summary_label = QLabel(self)
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.district_combo.currentIndexChanged.connect(lambda *_: self._refresh())
        self.unit_combo.currentIndexChanged.connect(lambda *_: self._refresh())
        self.export_button.clicked.connect(self._export_clicked)

        controls = QHBoxLayout()
        controls.setSpacing(6)
        controls.addWidget(self.district_label)
        controls.addWidget(self.district_combo)
        controls.addStretch(1)
        controls.addWidget(QLabel("Unit", self))
        controls.addWidget(self.unit_combo)
        controls.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(self.title_label)
        layout.addLayout(controls)
        layout.addWidget(self.chart)
        layout.addWidget(self.table)
        layout.addWidget(self.summary_label)
        layout.addStretch(1)
        self.set_data(areas, districts, city_name)

    # ------------------------------------------------------------------ data

    def set_data(self, areas: LandClassAreas | None, districts: pd.DataFrame | None = None,
                 city_name: str | None = None) -> None:
        """Show a city's land-class areas; ``districts`` (``district, code, area_m2`` rows, optionally
        ``boundary_area_m2``) adds a district chooser."""
        if city_name is not None:
            self.city_name = city_name
        if districts is not None:
            missing = {"district", "code", "area_m2"} - set(districts.columns)
            if missing:
                raise ValueError(f"a district table needs the columns district, code, area_m2; "
                                 f"missing: {', '.join(sorted(missing))}")
        self._areas, self._districts = areas, districts
        self.district_combo.blockSignals(True)
        self.district_combo.clear()
        self.district_combo.addItem(WHOLE_CITY, None)
        if districts is not None:
            for name in sorted(districts["district"].astype(str).unique()):
                self.district_combo.addItem(name, name)
        self.district_combo.blockSignals(False)
        has_districts = districts is not None and self.district_combo.count() > 1
        self.district_combo.setVisible(has_districts)
        self.district_label.setVisible(has_districts)
        total = float(areas.table["area_m2"].sum()) if areas is not None else 0.0
        self.unit_combo.blockSignals(True)
        self.unit_combo.setCurrentText("km²" if total >= 1e6 else "ha")
        self.unit_combo.blockSignals(False)
        self._refresh()

    def districts(self) -> list[str]:
        return [self.district_combo.itemText(i) for i in range(1, self.district_combo.count())]

    def set_district(self, district: str | None) -> None:
        index = 0 if district is None else self.district_combo.findData(district)
        if index < 0:
            raise KeyError(f"no district {district!r}; districts: {', '.join(self.districts()) or 'none'}")
        self.district_combo.setCurrentIndex(index)

    def district(self) -> str | None:
        return self.district_combo.currentData()

    def unit(self) -> str:
        return self.unit_combo.currentText()

    def set_unit(self, unit: str) -> None:
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")
        self.unit_combo.setCurrentText(unit)

    def rows(self) -> pd.DataFrame:
        """The class rows shown: code, name_zh, name_en, area_m2, share, color."""
        return self._rows.copy()

    @property
    def total_m2(self) -> float:
        return float(self._rows["area_m2"].sum()) if len(self._rows) else 0.0

    @property
    def closure_error_m2(self) -> float | None:
        return self._closure

    def _current_rows(self) -> tuple[pd.DataFrame, float | None, float | None]:
        district = self.district()
        if self._areas is None and (district is None or self._districts is None):
            return pd.DataFrame(columns=ROW_COLUMNS), None, None
        if district is None:
            rows = self._areas.table[["code", "name_zh", "name_en", "area_m2", "share"]].copy()
            boundary, closure = self._areas.boundary_area_m2, self._areas.closure_error_m2
        else:
            rows = district_rows(self._districts, district, self.classes)
            boundary = closure = None
            if "boundary_area_m2" in self._districts.columns:
                part = self._districts.loc[self._districts["district"].astype(str) == district, "boundary_area_m2"]
                if part.notna().any():
                    boundary = float(part.dropna().iloc[0])
                    closure = boundary - float(rows["area_m2"].sum())
        rows["code"] = rows["code"].astype(str)
        total = rows["area_m2"].sum()
        rows["share"] = rows["area_m2"] / total if total > 0 else 0.0
        rows["color"] = [self.colours.get(c, UNCLASSIFIED_COLOR) for c in rows["code"]]
        return rows.reset_index(drop=True), boundary, closure

    def _refresh(self) -> None:
        self._rows, self._boundary, self._closure = self._current_rows()
        unit = self.unit()
        self.chart.set_rows(self._rows, unit)
        self.table.horizontalHeaderItem(3).setText(f"Area ({unit})")
        self._fill_table(unit)
        self._fill_summary(unit)
        self.export_button.setEnabled(len(self._rows) > 0)

    def _fill_table(self, unit: str) -> None:
        rows = self._rows
        table = self.table
        table.setRowCount(len(rows) + (1 if len(rows) else 0))
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for r, row in rows.iterrows():
            code = QTableWidgetItem(_swatch(str(row["color"])), str(row["code"]))
            cells = [code, QTableWidgetItem(str(row["name_zh"])), QTableWidgetItem(str(row["name_en"])),
                     QTableWidgetItem(format_area(float(row["area_m2"]), unit)),
                     QTableWidgetItem(format_share(float(row["share"])))]
            cells[3].setData(Qt.ItemDataRole.UserRole, float(row["area_m2"]))
            for col, item in enumerate(cells):
                if col >= 3:
                    item.setTextAlignment(right)
                table.setItem(int(r), col, item)
        if len(rows):
            bold = QFont(table.font())
            bold.setBold(True)
            total = [QTableWidgetItem(""), QTableWidgetItem("合计"), QTableWidgetItem("Total"),
                     QTableWidgetItem(format_area(self.total_m2, unit)), QTableWidgetItem(format_share(1.0))]
            total[3].setData(Qt.ItemDataRole.UserRole, self.total_m2)
            for col, item in enumerate(total):
                item.setFont(bold)
                if col >= 3:
                    item.setTextAlignment(right)
                table.setItem(len(rows), col, item)
        height = (table.horizontalHeader().sizeHint().height() + table.rowCount()
                  * table.verticalHeader().defaultSectionSize() + 2 * table.frameWidth())
        table.setFixedHeight(height)

    def _fill_summary(self, unit: str) -> None:
        if not len(self._rows):
            self.summary_label.setText("No land-class areas for this city.")
            return
        where = self.district() or (f"{self.city_name} (whole city)" if self.city_name else WHOLE_CITY)
        parts = [f"<b>{where}</b>: {format_area(self.total_m2, unit)} {unit} in "
                 f"{int((self._rows['area_m2'] > 0).sum())} of {len(self._rows)} classes"]
        if self._boundary is not None:
            parts.append(f"boundary {format_area(self._boundary, unit)} {unit}")
        if self._closure is not None:
            closure = 0.0 if abs(self._closure) < 0.005 else self._closure
            relative = f" ({closure / self._boundary:.3%})" if self._boundary else ""
            parts.append(f"closure error {closure:,.2f} m²{relative}")
        self.summary_label.setText(" · ".join(parts))

    # ------------------------------------------------------------------ export

    def export_frame(self) -> pd.DataFrame:
        """The table shown as plain data (no total row): what the CSV holds."""
        rows = self._rows
        frame = pd.DataFrame({
            "code": rows["code"], "name_zh": rows["name_zh"], "name_en": rows["name_en"],
            "area_m2": rows["area_m2"].round(2), "area_ha": (rows["area_m2"] / 1e4).round(4),
            "area_km2": (rows["area_m2"] / 1e6).round(6), "share_percent": (rows["share"] * 100).round(3)})
        if self.district() is not None:
            frame.insert(0, "district", self.district())
        return frame

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the shown table to a CSV file (replaced in one step, never half-written)."""
        return write_csv_atomic(self.export_frame(), path)

    def _export_clicked(self) -> None:
        stem = "_".join(p for p in ("land_classes", self.city_name, self.district() or "") if p)
        path = self.ask_path(f"{stem.replace(' ', '_').lower()}.csv")
        if path:
            self.export_csv(path)

    def sizeHint(self) -> QSize:
        return QSize(620, 720)
