"""Layer panel, style dialog, attribute table and resources panel on Monaco's real layers."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QModelIndex, Qt, QtMsgType  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402

from twin.geo.layers import Layer, LayerGroup, LayerTree  # noqa: E402
from twin.geo.selection import Selection  # noqa: E402
from twin.geo.style import CategorisedStyle, GraduatedStyle, SingleStyle, parse_style, style_to_dict  # noqa: E402
from twin.ui.attribute_table import AttributeTable  # noqa: E402
from twin.ui.layer_panel import LayerPanel, LayerPropertiesDialog  # noqa: E402
from twin.ui.resources_panel import ResourcesPanel  # noqa: E402
from twin.ui.style_dialog import MAX_CATEGORIES, StyleDialog  # noqa: E402

CHECKED, UNCHECKED, PARTIAL = Qt.CheckState.Checked, Qt.CheckState.Unchecked, Qt.CheckState.PartiallyChecked
CHECK = Qt.ItemDataRole.CheckStateRole


@pytest.fixture(scope="module")
def city(gis_data):
    from twin.city.city import load_city

    return load_city(gis_data / "monaco")


@pytest.fixture
def tree(city) -> LayerTree:
    """A fresh copy of Monaco's layer tree (same order, groups and data) that a test may edit;
    the Buildings layer carries the derived building table (heights, floor areas)."""
    source = city.one_map.tree
    copy = LayerTree()
    for layer in source:
        clone = Layer(**layer.model_dump(exclude={"style", "group"}), style=parse_style(style_to_dict(layer.style)))
        clone.data = city.buildings.frame if layer.role == "buildings" else layer.data
        copy.add(clone, group=layer.group)
    for group in source.groups:
        copy.group(group.name).visible = group.visible
    return copy


def layer(tree: LayerTree, name: str) -> Layer:
    return next(lay for lay in tree if lay.name == name)


def model_structure(model) -> list[tuple[str, list[str]]]:
    out = []
    for r in range(model.rowCount()):
        index = model.index(r, 0)
        out.append((model.data(index), [model.data(model.index(k, 0, index)) for k in range(model.rowCount(index))]))
    return out


def tree_structure(tree: LayerTree) -> list[tuple[str, list[str]]]:
    return [(item.name, [c.name for c in item.children] if isinstance(item, LayerGroup) else [])
            for item in tree.items]


@pytest.fixture
def panel(qtbot, tree) -> LayerPanel:
    widget = LayerPanel(tree)
    qtbot.addWidget(widget)
    widget.resize(320, 420)
    widget.show()
    return widget


# ----------------------------------------------------------------------------- layer panel


def test_panel_shows_every_layer_in_its_group(panel, tree):
    model = panel.model
    assert model_structure(model) == tree_structure(tree)
    shown = [model.data(model.index(k, 0, model.index(r, 0)))
             for r in range(model.rowCount()) for k in range(model.rowCount(model.index(r, 0)))]
    assert shown == [lay.name for lay in tree] and len(shown) == 7
    for lay in tree:
        index = model.index_of(lay)
        assert model.item(index) is lay
        assert not model.data(index, Qt.ItemDataRole.DecorationRole).isNull()
        assert lay.name in model.data(index, Qt.ItemDataRole.ToolTipRole)
        assert panel.view.isExpanded(index.parent())


def test_check_boxes_edit_visibility(panel, tree):
    model = panel.model
    roads = layer(tree, "Roads")
    assert model.setData(model.index_of(roads), UNCHECKED.value, CHECK)
    assert roads.visible is False
    assert model.data(model.index_of(roads), CHECK) == UNCHECKED
    land = tree.group("Land")
    assert model.setData(model.index_of(land), UNCHECKED.value, CHECK)
    assert land.visible is False and not any(lay.visible for lay in land.children)
    assert model.setData(model.index_of(land), CHECKED.value, CHECK)
    assert land.visible and all(lay.visible for lay in land.children)


def test_model_changes_update_the_check_boxes(qtbot, panel, tree):
    model = panel.model
    natural = layer(tree, "Natural")
    with qtbot.waitSignal(model.dataChanged, timeout=1000):
        natural.visible = False
    assert model.data(model.index_of(natural), CHECK) == UNCHECKED
    assert model.data(model.index_of(tree.group("Land")), CHECK) == PARTIAL
    tree.group("Land").visible = False
    assert model.data(model.index_of(tree.group("Land")), CHECK) == UNCHECKED
    assert model.data(model.index_of(layer(tree, "Land use")), Qt.ItemDataRole.ForegroundRole) is not None
    # Checking a layer in a hidden group shows the group too, so the layer is drawn.
    model.setData(model.index_of(natural), CHECKED.value, CHECK)
    assert tree.group("Land").visible and natural in tree.visible_layers()


def test_drops_and_moves_reorder_the_tree(panel, tree):
    model = panel.model
    land = model.index_of(tree.group("Land"))
    # Drag "Land use" above "Natural" inside the Land group.
    mime = model.mimeData([model.index_of(layer(tree, "Land use"))])
    assert model.canDropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, land)
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, model.index_of(tree.group("Land")))
    assert [lay.name for lay in tree.group("Land").children] == ["Land use", "Natural"]
    # Drag Roads into the Land group, between its two layers.
    mime = model.mimeData([model.index_of(layer(tree, "Roads"))])
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 1, 0, model.index_of(tree.group("Land")))
    assert tree.index_of("Roads") == ("Land", 1) and layer(tree, "Roads").group == "Land"
    # Drag the Land group to the top of the map.
    mime = model.mimeData([model.index_of(tree.group("Land"))])
    assert not model.canDropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, model.index_of(tree.group("Water")))
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert tree.items[0].name == "Land"
    # Qt's moveRows: last layer of Land to its top.
    land = model.index_of(tree.group("Land"))
    assert model.moveRows(land, 2, 1, land, 0)
    assert [lay.name for lay in tree.group("Land").children] == ["Natural", "Land use", "Roads"]
    assert model_structure(model) == tree_structure(tree)


def test_edits_from_elsewhere_show_in_the_panel(panel, tree):
    panel.set_current("Natural")
    tree.move("Natural", 0, group="Transport")
    tree.move("Water", 0)
    tree.add(Layer(name="Shelters", role="shelters"), group="Points of interest", index=0)
    tree.remove("Boundaries")
    assert model_structure(panel.model) == tree_structure(tree)
    assert panel.current_layer() is layer(tree, "Natural")
    layer(tree, "Roads").name = "Streets"
    assert panel.model.data(panel.model.index_of(layer(tree, "Streets"))) == "Streets"
    tree.group("Transport").expanded = False
    assert not panel.view.isExpanded(panel.model.index_of(tree.group("Transport")))


def test_opacity_slider_follows_the_current_layer(qtbot, panel, tree):
    roads = layer(tree, "Roads")
    with qtbot.waitSignal(panel.current_layer_changed, timeout=1000) as blocker:
        panel.set_current(roads)
    assert blocker.args == ["Roads"]
    panel.opacity_slider.setValue(40)
    assert roads.opacity == pytest.approx(0.4)
    roads.opacity = 0.75
    assert panel.opacity_slider.value() == 75 and panel.opacity_label.text() == "75 %"
    panel.set_current(tree.group("Land"))
    assert panel.current_layer() is None and not panel.opacity_slider.isEnabled()


def test_remove_asks_first(panel, tree):
    roads = layer(tree, "Roads")
    questions = []
    panel.confirm = lambda question: questions.append(question) or False
    assert not panel.remove_item(roads)
    assert "Roads" in questions[0] and tree.find("Roads") is roads
    panel.confirm = lambda question: True
    panel.actions_of(panel.menu_for(roads))["Remove Layer"].trigger()
    assert tree.find("Roads") is None
    assert model_structure(panel.model) == tree_structure(tree)
    assert panel.remove_item(tree.group("Land"))
    assert tree.group("Land") is None and tree.find("Natural") is None


def test_a_layer_named_like_its_group_is_moved_and_removed_alone(panel, tree):
    buildings = layer(tree, "Buildings")
    group = tree.group("Buildings")
    assert buildings in group.children
    model = panel.model
    mime = model.mimeData([model.index_of(group)])
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert tree.items[0] is group
    mime = model.mimeData([model.index_of(buildings)])
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 1, 0, QModelIndex())
    assert tree.items[1] is buildings and tree.items[0] is group and group.children == []
    assert model_structure(model) == tree_structure(tree)
    panel.confirm = lambda question: True
    assert panel.remove_item(buildings)
    assert tree.find("Buildings") is None and tree.group("Buildings") is group
    assert model_structure(model) == tree_structure(tree)


def test_context_menu_actions(qtbot, panel, tree):
    roads = layer(tree, "Roads")
    actions = panel.actions_of(panel.menu_for(roads))
    assert set(actions) == {"Zoom to Layer", "Open Attribute Table", "Style", "Properties", "Remove Layer"}
    with qtbot.waitSignal(panel.zoom_to_layer, timeout=1000) as zoom:
        actions["Zoom to Layer"].trigger()
    assert zoom.args == ["Roads"]
    with qtbot.waitSignal(panel.open_table, timeout=1000) as table:
        actions["Open Attribute Table"].trigger()
    assert table.args == ["Roads"]
    opened = []
    panel.exec_dialog = lambda dialog: opened.append(dialog) or 0
    actions["Style"].trigger()
    actions["Properties"].trigger()
    assert isinstance(opened[0], StyleDialog) and opened[0].layer is roads
    assert isinstance(opened[1], LayerPropertiesDialog)
    facts = dict(opened[1].rows)
    assert facts["Features"] == "3,630" and facts["CRS"].startswith("EPSG:32632")
    assert facts["Source"].endswith("monaco.osm.pbf") and facts["Role"] == "roads"
    assert "km" in facts["Size"] and facts["Geometry check"]


# ----------------------------------------------------------------------------- style dialog


def test_style_dialog_builds_and_applies_a_graduated_style(qtbot, tree):
    buildings = layer(tree, "Buildings")
    dialog = StyleDialog(buildings)
    qtbot.addWidget(dialog)
    dialog.set_kind("graduated")
    dialog.grad_field_combo.setCurrentText("height_m")
    dialog.classes_spin.setValue(5)
    dialog.method_combo.setCurrentIndex(dialog.method_combo.findData("equal"))
    style = dialog.build_style()
    assert isinstance(style, GraduatedStyle)
    assert (style.field, style.n_classes, style.method) == ("height_m", 5, "equal")
    assert dialog.classes_table.rowCount() == 5
    counts = [int(dialog.classes_table.item(r, 2).text().replace(",", "")) for r in range(5)]
    assert sum(counts) == 1283
    assert dialog.classes_table.item(4, 1).text().endswith("111.0")
    events, changes = [], []
    buildings.events.style.connect(events.append)
    tree.changed.connect(lambda item, field, value: changes.append((item.name, field)))
    assert dialog.apply()
    assert buildings.style == style and len(events) == 1 and ("Buildings", "style") in changes
    assert buildings.colours().shape == (1283, 4)


def test_style_dialog_categories_and_single_colour(qtbot, tree):
    buildings = layer(tree, "Buildings")
    dialog = StyleDialog(buildings)
    qtbot.addWidget(dialog)
    dialog.set_kind("categorised")
    assert dialog.cat_field_combo.currentText() == "building"
    style = dialog.build_style()
    assert isinstance(style, CategorisedStyle) and 2 <= len(style.categories) <= MAX_CATEGORIES
    assert {"apartments", "residential"} <= set(style.categories)
    dialog.cat_field_combo.setCurrentText("name")
    assert len(dialog.categories()) == MAX_CATEGORIES
    assert dialog.categories_table.rowCount() == MAX_CATEGORIES + 1
    assert dialog.categories_table.item(MAX_CATEGORIES, 1).text() == "other values"
    dialog.set_kind("single")
    dialog.fill_button.picker = lambda initial: QColor("#ff8800")
    dialog.fill_button.click()
    built = dialog.build_style()
    assert isinstance(built, SingleStyle) and built.fill == "#ff8800"
    assert (built.stroke, built.stroke_width) == (buildings.style.stroke, buildings.style.stroke_width)
    dialog.accept()
    assert buildings.style.fill == "#ff8800"


# ----------------------------------------------------------------------------- attribute table


@pytest.fixture
def table(qtbot, tree) -> tuple[AttributeTable, Selection, Layer]:
    selection = Selection()
    buildings = layer(tree, "Buildings")
    widget = AttributeTable(selection, buildings)
    qtbot.addWidget(widget)
    widget.resize(1000, 400)
    widget.show()
    return widget, selection, buildings


def heights(widget: AttributeTable) -> np.ndarray:
    col = widget.model.column_names().index("height_m")
    return np.array([float(widget.proxy.data(widget.proxy.index(r, col)) or "nan")
                     for r in range(widget.proxy.rowCount())])


def test_attribute_table_sorts_and_filters(table):
    widget, _, _ = table
    assert widget.proxy.rowCount() == 1283
    assert "geometry" not in widget.model.column_names() and "height_m" in widget.model.column_names()
    widget.sort_by("height_m", descending=True)
    assert widget.cell(0, "name") in {"Le Millefiori", "L'Annonciade"} and float(widget.cell(0, "height_m")) == 111
    assert (np.diff(heights(widget)) <= 0).all()
    widget.sort_by("height_m")
    assert (np.diff(heights(widget)) >= 0).all()
    widget.sort_by("footprint_m2", descending=True)
    footprints = [float(widget.cell(r, "footprint_m2").replace(",", "")) for r in range(50)]
    assert footprints == sorted(footprints, reverse=True) and footprints[0] > 1000
    widget.set_filter("Millefiori")
    assert widget.proxy.rowCount() == 1 and widget.cell(0, "name") == "Le Millefiori"
    widget.set_filter("millefiori", column="name")
    assert widget.proxy.rowCount() == 1
    widget.set_filter("Millefiori", column="building")
    assert widget.proxy.rowCount() == 0
    widget.set_filter("")
    assert widget.proxy.rowCount() == 1283


def test_attribute_table_typing_filters_after_a_pause(qtbot, table):
    widget, _, _ = table
    qtbot.keyClicks(widget.filter_edit, "Millefiori")
    qtbot.waitUntil(lambda: widget.proxy.rowCount() == 1, timeout=2000)


def test_attribute_table_selection_follows_both_ways(qtbot, table):
    widget, selection, buildings = table
    emitted = []
    selection.changed.connect(lambda name, rows: emitted.append((name, list(rows))))
    millefiori = int(np.flatnonzero(buildings.data["name"].to_numpy() == "Le Millefiori")[0])
    widget.set_filter("Millefiori")
    widget.select_rows([0])
    assert selection.layer == "Buildings" and selection.rows.tolist() == [millefiori]
    assert emitted == [("Buildings", [millefiori])]
    # From elsewhere (the map), after sorting: the table selects the matching rows.
    widget.set_filter("")
    widget.sort_by("height_m", descending=True)
    annonciade = int(np.flatnonzero(buildings.data["name"].to_numpy() == "L'Annonciade")[0])
    selection.select("Buildings", [annonciade, 5])
    assert widget.selected_rows().tolist() == sorted([annonciade, 5])
    shown = {index.row() for index in widget.view.selectionModel().selectedRows()}
    assert {int(r) for r in widget.proxy.source_rows(sorted(shown))} == {annonciade, 5}
    assert widget.cell(min(shown), "name") in {"Le Millefiori", "L'Annonciade"}
    assert len(emitted) == 2  # no echo back from the table
    widget.selected_only.setChecked(True)
    assert widget.proxy.rowCount() == 2
    widget.selected_only.setChecked(False)
    # A filter that hides a selected row keeps it selected when the user adds another.
    widget.set_filter("Annonciade")
    assert widget.selected_rows().tolist() == [annonciade]
    selection.select("Roads", [1])
    assert widget.selected_rows().tolist() == []
    widget.set_filter("")
    selection.select("Buildings", [3])
    widget.clear_button.click()
    assert selection.layer == "" and widget.selected_rows().tolist() == []


def test_attribute_table_is_fast_on_twelve_thousand_rows(qtbot, city):
    frame = pd.concat([city.buildings.frame] * 10, ignore_index=True)
    big = Layer(name="Many buildings", role="buildings")
    big.data = frame
    selection = Selection()
    t0 = time.perf_counter()
    widget = AttributeTable(selection, big)
    qtbot.addWidget(widget)
    widget.show()
    opened = time.perf_counter() - t0
    t0 = time.perf_counter()
    widget.sort_by("height_m", descending=True)
    widget.sort_by("name")
    sorted_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    widget.set_filter("Millefiori")
    filtered = time.perf_counter() - t0
    assert widget.proxy.rowCount() == 10
    widget.set_filter("")
    t0 = time.perf_counter()
    selection.select("Many buildings", np.arange(0, 12830, 3))
    selected_s = time.perf_counter() - t0
    assert len(widget.selected_rows()) == len(range(0, 12830, 3))
    assert opened < 2.0 and sorted_s < 1.0 and filtered < 2.0 and selected_s < 2.0, \
        (opened, sorted_s, filtered, selected_s)


# ----------------------------------------------------------------------------- resources panel


def test_resources_panel_lists_land_classes(qtbot, city, tmp_path):
    panel = ResourcesPanel(city.land_classes)
    qtbot.addWidget(panel)
    panel.show()
    rows = panel.rows()
    assert len(rows) in (9, 10)
    assert panel.table.rowCount() == len(rows) + 1
    assert rows["area_m2"].sum() == pytest.approx(panel.total_m2)
    assert panel.total_m2 == pytest.approx(city.land_classes.table["area_m2"].sum())
    last = panel.table.rowCount() - 1
    assert panel.table.item(last, 2).text() == "Total"
    assert panel.table.item(last, 3).data(Qt.ItemDataRole.UserRole) == pytest.approx(panel.total_m2)
    assert panel.table.item(last, 3).text() == f"{panel.total_m2 / 1e6:,.3f}"
    assert panel.table.item(0, 1).text() == "耕地" and panel.table.item(0, 2).text() == "Cultivated land"
    assert rows["share"].sum() == pytest.approx(1.0)
    assert panel.district_combo.isHidden() and panel.district_label.isHidden()
    assert "closure error" in panel.summary_label.text()
    panel.set_unit("ha")
    assert panel.table.horizontalHeaderItem(3).text() == "Area (ha)"
    assert panel.table.item(last, 3).text() == f"{panel.total_m2 / 1e4:,.1f}"
    path = panel.export_csv(tmp_path / "land.csv")
    back = pd.read_csv(path, encoding="utf-8-sig", dtype={"code": str})
    assert back["name_zh"].tolist() == rows["name_zh"].tolist()
    assert back["area_m2"].sum() == pytest.approx(panel.total_m2, abs=0.1)
    assert [p.name for p in tmp_path.iterdir()] == ["land.csv"]


def test_resources_panel_per_district(qtbot, city):
    table = city.land_classes.table
    districts = pd.concat([
        pd.DataFrame({"district": "Monte-Carlo", "code": table["code"], "area_m2": table["area_m2"] * 0.25}),
        pd.DataFrame({"district": "Fontvieille", "code": table["code"], "area_m2": table["area_m2"] * 0.75,
                      "boundary_area_m2": table["area_m2"].sum() * 0.75}),
    ], ignore_index=True)
    panel = ResourcesPanel(city.land_classes, districts)
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.district_combo.isHidden()
    assert panel.districts() == ["Fontvieille", "Monte-Carlo"]
    panel.set_district("Monte-Carlo")
    assert panel.total_m2 == pytest.approx(table["area_m2"].sum() * 0.25)
    assert panel.closure_error_m2 is None
    panel.set_district("Fontvieille")
    assert panel.closure_error_m2 == pytest.approx(0.0, abs=1e-3)
    assert panel.export_frame()["district"].eq("Fontvieille").all()
    panel.set_district(None)
    assert panel.total_m2 == pytest.approx(table["area_m2"].sum())
    with pytest.raises(KeyError):
        panel.set_district("Atlantis")


# ----------------------------------------------------------------------------- every control, no noise


def test_every_control_runs_without_errors(qtbot, capfd, qtlog, tree, city, tmp_path):
    capfd.readouterr()
    selection = Selection()
    # Layer panel: every layer and group current, every check box, the slider, every menu action.
    panel = LayerPanel(tree)
    qtbot.addWidget(panel)
    panel.show()
    panel.confirm = lambda question: True
    panel.exec_dialog = lambda dialog: 0
    for item in [*tree.items, *tree]:
        panel.set_current(item)
        index = panel.model.index_of(item)
        for state in (UNCHECKED, CHECKED):
            panel.model.setData(index, state.value, CHECK)
        panel.view.collapse(index)
        panel.view.expand(index)
        for action in panel.actions_of(panel.menu_for(item)).values():
            if not action.text().startswith("Remove"):
                action.trigger()
        if isinstance(item, Layer):
            for value in (0, 35, 100):
                panel.opacity_slider.setValue(value)
    panel.model.setData(panel.model.index_of(layer(tree, "Water")), "Sea", Qt.ItemDataRole.EditRole)
    panel.actions_of(panel.menu_for(layer(tree, "Sea")))["Remove Layer"].trigger()
    panel.grab()

    # Style dialog: every kind, ramp, method and class count; colour pickers; apply and OK.
    buildings = layer(tree, "Buildings")
    dialog = StyleDialog(buildings)
    qtbot.addWidget(dialog)
    for button in (dialog.fill_button, dialog.stroke_button, dialog.default_button):
        button.picker = lambda initial: QColor("#123456")
        button.click()
    for kind in ("single", "categorised", "graduated"):
        dialog.set_kind(kind)
        dialog.grab()
        assert dialog.apply()
    for k in range(dialog.grad_field_combo.count()):
        dialog.grad_field_combo.setCurrentIndex(k)
    dialog.grad_field_combo.setCurrentText("height_m")
    for k in range(dialog.ramp_combo.count()):
        dialog.ramp_combo.setCurrentIndex(k)
    for method in range(dialog.method_combo.count()):
        dialog.method_combo.setCurrentIndex(method)
        for n in (1, 3, 7, 12):
            dialog.classes_spin.setValue(n)
    dialog.reverse_check.setChecked(True)
    dialog.stroke_width_spin.setValue(1.5)
    dialog.point_size_spin.setValue(9)
    dialog.set_kind("categorised")
    for k in range(dialog.cat_ramp_combo.count()):
        dialog.cat_ramp_combo.setCurrentIndex(k)
    for k in range(dialog.cat_field_combo.count()):
        dialog.cat_field_combo.setCurrentIndex(k)
    dialog.cat_field_combo.setCurrentText("building")
    dialog.classify_button.click()
    dialog._pick_category_colour(0, 0)
    dialog._pick_category_colour(dialog.categories_table.rowCount() - 1, 0)
    dialog.buttons.button(dialog.buttons.StandardButton.Apply).click()
    dialog.accept()
    assert buildings.style.kind == "categorised" and buildings.style.stroke_width == 1.5

    # Attribute table: every layer, sort by every column both ways, filters, toggles.
    widget = AttributeTable(selection)
    qtbot.addWidget(widget)
    widget.show()
    for lay in tree:
        widget.set_layer(lay)
        for col in range(widget.model.columnCount()):
            widget.view.sortByColumn(col, Qt.SortOrder.DescendingOrder)
            widget.view.sortByColumn(col, Qt.SortOrder.AscendingOrder)
        widget.set_filter("a")
        for k in range(min(6, widget.column_combo.count())):
            widget.column_combo.setCurrentIndex(k)
        widget.select_rows([0, 1, 2])
        widget.selected_only.setChecked(True)
        widget.selected_only.setChecked(False)
        widget.clear_button.click()
        widget.grab()
    widget.set_layer(None)

    # Resources panel: units, districts, export.
    resources = ResourcesPanel(city.land_classes, pd.DataFrame({"district": ["A", "A", "B"],
                                                                "code": ["20", "10", "11"],
                                                                "area_m2": [10.0, 5.0, 3.0]}))
    qtbot.addWidget(resources)
    resources.show()
    resources.ask_path = lambda suggestion: str(tmp_path / suggestion)
    for k in range(resources.district_combo.count()):
        resources.district_combo.setCurrentIndex(k)
        for unit in range(resources.unit_combo.count()):
            resources.unit_combo.setCurrentIndex(unit)
        resources.export_button.click()
        resources.grab()
    assert len(list(tmp_path.glob("*.csv"))) == 3

    out, err = capfd.readouterr()
    assert err == ""
    noisy = (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
    assert [r.message for r in qtlog.records if r.type in noisy] == []
