"""The 2D map canvas on the sample cities: drawing, navigation, identify, selection, export."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from pyproj import Transformer

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QImage, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from twin.city.city import load_city  # noqa: E402
from twin.geo.selection import Selection  # noqa: E402
from twin.geo.style import SingleStyle  # noqa: E402
from twin.ui.map2d import MapCanvas  # noqa: E402
from twin.ui.map2d_render import (  # noqa: E402
    BACKGROUND,
    MOVE_TO,
    PATH_RECORD,
    View,
    format_length,
    scale_bar_length,
    split_subpaths,
    stroke_records,
)

WIDTH, HEIGHT = 800, 500


@pytest.fixture(scope="module")
def monaco(gis_data):
    return load_city(gis_data / "monaco")


@pytest.fixture(scope="module")
def carlisle(gis_data):
    return load_city(gis_data / "carlisle")


@pytest.fixture
def restore_tree():
    """Put back visibility and styles that a test changes on the shared city."""
    saved = []

    def remember(one_map):
        saved.extend((layer, layer.visible, layer.style) for layer in one_map.tree)

    yield remember
    for layer, visible, style in saved:
        layer.visible, layer.style = visible, style


def _canvas(qtbot, one_map) -> tuple[MapCanvas, Selection]:
    selection = Selection()
    canvas = MapCanvas(one_map, selection)
    qtbot.addWidget(canvas)
    canvas.resize(WIDTH, HEIGHT)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.full_extent()
    return canvas, selection


def _millefiori(city) -> tuple[int, float, float]:
    frame = city.one_map.data["Buildings"]
    row = int(np.flatnonzero((frame["name"] == "Le Millefiori").to_numpy())[0])
    centre = frame.geometry.iloc[row].centroid
    return row, centre.x, centre.y


def _pixel(image: QImage, canvas: MapCanvas, x: float, y: float) -> tuple[int, int, int]:
    sx, sy = canvas.map_to_screen(x, y)
    colour = image.pixelColor(int(sx), int(sy))
    return colour.red(), colour.green(), colour.blue()


def _close(a, b, tolerance: int = 4) -> bool:
    return all(abs(int(p) - int(q)) <= tolerance for p, q in zip(a, b))


def _zoom_to_millefiori(canvas: MapCanvas, x: float, y: float) -> None:
    canvas.zoom_to_extent(x - 120, y - 75, x + 120, y + 75)


# ----------------------------------------------------------------------------- drawing


def test_monaco_draws_the_building_in_its_colour(qtbot, monaco, restore_tree):
    restore_tree(monaco.one_map)
    canvas, _ = _canvas(qtbot, monaco.one_map)
    full = canvas.render_image(WIDTH, HEIGHT)
    colours = {full.pixel(x, y) for x in range(0, WIDTH, 7) for y in range(0, HEIGHT, 7)}
    assert len(colours) > 50, "the full view of Monaco should not be blank"

    row, x, y = _millefiori(monaco)
    _zoom_to_millefiori(canvas, x, y)
    image = canvas.render_image(WIDTH, HEIGHT)
    building = _pixel(image, canvas, x, y)
    legend = [entry.colour[:3] for entry in canvas.legend("Buildings")]
    assert any(_close(building, colour) for colour in legend), (building, legend)
    assert not _close(building, BACKGROUND[:3])

    monaco.one_map.tree.find("Buildings").visible = False
    hidden = _pixel(canvas.render_image(WIDTH, HEIGHT), canvas, x, y)
    assert hidden != building


def test_style_change_redraws(qtbot, monaco, restore_tree):
    restore_tree(monaco.one_map)
    canvas, _ = _canvas(qtbot, monaco.one_map)
    _, x, y = _millefiori(monaco)
    _zoom_to_millefiori(canvas, x, y)
    monaco.one_map.tree.find("Buildings").style = SingleStyle(fill="#0000ff", stroke="#000000", stroke_width=0.5)
    assert _close(_pixel(canvas.render_image(WIDTH, HEIGHT), canvas, x, y), (0, 0, 255))
    assert canvas.legend("Buildings")[0].colour == (0, 0, 255, 255)


def test_feature_at_and_identify(qtbot, monaco):
    canvas, _ = _canvas(qtbot, monaco.one_map)
    row, x, y = _millefiori(monaco)
    _zoom_to_millefiori(canvas, x, y)
    assert canvas.feature_at(x, y) == ("Buildings", row)

    canvas.set_tool("identify")
    sx, sy = canvas.map_to_screen(x, y)
    with qtbot.waitSignal(canvas.identified, timeout=2000) as blocker:
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(round(sx), round(sy)))
    layer, found, attributes = blocker.args
    assert (layer, found) == ("Buildings", row)
    assert attributes["name"] == "Le Millefiori"
    assert float(attributes["height"]) == pytest.approx(111.0)
    assert "geometry" not in attributes


def test_box_select_highlights(qtbot, monaco):
    canvas, selection = _canvas(qtbot, monaco.one_map)
    row, x, y = _millefiori(monaco)
    _zoom_to_millefiori(canvas, x, y)
    before = _pixel(canvas.render_image(WIDTH, HEIGHT), canvas, x, y)
    assert canvas.current_layer == "Buildings"

    canvas.set_tool("select_box")
    sx, sy = (round(v) for v in canvas.map_to_screen(x, y))
    with qtbot.waitSignal(selection.changed, timeout=2000):
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(sx - 8, sy - 8))
        qtbot.mouseMove(canvas, QPoint(sx, sy))
        qtbot.mouseMove(canvas, QPoint(sx + 8, sy + 8))
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(sx + 8, sy + 8))
    assert selection.layer == "Buildings"
    assert row in selection.rows

    r, g, b = _pixel(canvas.render_image(WIDTH, HEIGHT), canvas, x, y)
    assert r > 200 and g > 180 and b < 120, (r, g, b)
    assert (r, g, b) != before

    selection.clear()
    assert _close(_pixel(canvas.render_image(WIDTH, HEIGHT), canvas, x, y), before)


def test_selection_from_elsewhere_shows(qtbot, monaco):
    canvas, selection = _canvas(qtbot, monaco.one_map)
    row, x, y = _millefiori(monaco)
    _zoom_to_millefiori(canvas, x, y)
    selection.select("Buildings", [row])
    r, g, b = _pixel(canvas.render_image(WIDTH, HEIGHT), canvas, x, y)
    assert r > 200 and g > 180 and b < 120


# ----------------------------------------------------------------------------- navigation


def test_wheel_zooms_about_the_cursor(qtbot, monaco):
    canvas, _ = _canvas(qtbot, monaco.one_map)
    before = canvas.view_extent()
    pos = QPointF(200.0, 150.0)
    anchor = canvas.screen_to_map(pos.x(), pos.y())
    event = QWheelEvent(pos, canvas.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    with qtbot.waitSignal(canvas.extent_changed, timeout=1000):
        QApplication.sendEvent(canvas, event)
    after = canvas.view_extent()
    assert (after[2] - after[0]) == pytest.approx((before[2] - before[0]) / canvas.WHEEL_STEP)
    assert canvas.screen_to_map(pos.x(), pos.y()) == pytest.approx(anchor, abs=1e-6)
    assert not canvas.grab().isNull()  # while zooming: the last image, scaled
    qtbot.wait(canvas.SETTLE_MS + 60)
    assert not canvas.grab().isNull()  # settled: redrawn at the new scale


def test_zoom_to_layer_fits_it(qtbot, monaco):
    canvas, _ = _canvas(qtbot, monaco.one_map)
    canvas.zoom_to_layer("Water")
    xmin, ymin, xmax, ymax = monaco.one_map.data["Water"].total_bounds
    vx0, vy0, vx1, vy1 = canvas.view_extent()
    assert vx0 <= xmin and vy0 <= ymin and vx1 >= xmax and vy1 >= ymax
    tight_x = (xmax - xmin) / (vx1 - vx0)
    tight_y = (ymax - ymin) / (vy1 - vy0)
    assert max(tight_x, tight_y) > 0.9


def test_set_view_centre_and_full_extent(qtbot, monaco):
    canvas, _ = _canvas(qtbot, monaco.one_map)
    _, x, y = _millefiori(monaco)
    with qtbot.waitSignal(canvas.extent_changed, timeout=1000) as blocker:
        canvas.set_view_centre(x, y)
    xmin, ymin, xmax, ymax = blocker.args
    assert ((xmin + xmax) / 2, (ymin + ymax) / 2) == pytest.approx((x, y))
    canvas.full_extent()
    bxmin, bymin, bxmax, bymax = monaco.one_map.extent()
    vx0, vy0, vx1, vy1 = canvas.view_extent()
    assert vx0 <= bxmin and vx1 >= bxmax and vy0 <= bymin and vy1 >= bymax


def test_drag_pans_and_shift_drag_zooms_to_a_box(qtbot, monaco):
    canvas, _ = _canvas(qtbot, monaco.one_map)
    canvas.set_tool("pan")
    xmin, ymin, _, _ = canvas.view_extent()
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(300, 200))
    qtbot.mouseMove(canvas, QPoint(350, 230))
    qtbot.mouseMove(canvas, QPoint(400, 260))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(400, 260))
    moved = canvas.view_extent()
    assert moved[0] == pytest.approx(xmin - 100 / canvas.scale)
    assert moved[1] == pytest.approx(ymin + 60 / canvas.scale)

    corner_a, corner_b = canvas.screen_to_map(100, 100), canvas.screen_to_map(300, 200)
    modifier = Qt.KeyboardModifier.ShiftModifier
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, modifier, QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(300, 200))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, modifier, QPoint(300, 200))
    vx0, vy0, vx1, vy1 = canvas.view_extent()
    assert vx0 <= corner_a[0] < corner_b[0] <= vx1 and vy0 <= corner_b[1] < corner_a[1] <= vy1
    assert vx1 - vx0 < (corner_b[0] - corner_a[0]) * 1.2 or vy1 - vy0 < (corner_a[1] - corner_b[1]) * 1.2


def test_switching_city(qtbot, monaco, carlisle):
    canvas, selection = _canvas(qtbot, monaco.one_map)
    selection.select("Buildings", [0])
    canvas.set_one_map(carlisle.one_map)
    xmin, ymin, xmax, ymax = carlisle.one_map.extent()
    vx0, vy0, vx1, vy1 = canvas.view_extent()
    assert vx0 <= xmin and vx1 >= xmax and vy0 <= ymin and vy1 >= ymax
    assert canvas.current_layer == "Buildings"
    assert canvas.render_image(200, 120).width() == 200
    with pytest.raises(ValueError):
        canvas.set_tool("lasso")
    with pytest.raises(KeyError):
        canvas.set_current_layer("Nope")


def test_scale_bar_is_round(qtbot, monaco):
    canvas, _ = _canvas(qtbot, monaco.one_map)
    for factor in (1.0, 3.7, 11.0, 0.2):
        canvas.zoom_by(factor)
        metres = canvas.scale_bar_metres()
        mantissa = metres / 10 ** math.floor(math.log10(metres))
        assert round(mantissa, 9) in (1.0, 2.0, 5.0)
    assert [scale_bar_length(m, 100) for m in (0.4, 1.0, 3.0, 9.0, 30.0)] == [20.0, 100.0, 200.0, 500.0, 2000.0]
    assert (format_length(500), format_length(1000), format_length(2000)) == ("500 m", "1 km", "2 km")


def test_cursor_moved_reports_lon_lat(qtbot, monaco):
    canvas, _ = _canvas(qtbot, monaco.one_map)
    _, x, y = _millefiori(monaco)
    _zoom_to_millefiori(canvas, x, y)
    sx, sy = canvas.map_to_screen(x, y)
    with qtbot.waitSignal(canvas.cursor_moved, timeout=1000) as blocker:
        qtbot.mouseMove(canvas, QPoint(round(sx), round(sy)))
    mx, my, lon, lat = blocker.args
    pixel = 1.0 / canvas.scale
    assert mx == pytest.approx(x, abs=pixel) and my == pytest.approx(y, abs=pixel)
    expected = Transformer.from_crs(monaco.crs, "EPSG:4326", always_xy=True).transform(mx, my)
    assert (lon, lat) == pytest.approx(expected, abs=1e-9)
    assert 7.4 < lon < 7.45 and 43.72 < lat < 43.76


def test_view_maths_round_trip():
    view = View.fit((0.0, 0.0, 1000.0, 500.0), 400, 200, margin=0.0)
    assert view.to_screen(0.0, 500.0) == pytest.approx((0.0, 0.0))
    assert view.to_map(400.0, 200.0) == pytest.approx((1000.0, 0.0))
    zoomed = view.zoomed(2.0, 100.0, 50.0)
    assert zoomed.to_map(100.0, 50.0) == pytest.approx(view.to_map(100.0, 50.0))
    assert zoomed.panned(10.0, 0.0).to_map(110.0, 50.0) == pytest.approx(zoomed.to_map(100.0, 50.0))


def test_wide_lines_become_filled_bands():
    line = np.zeros(3, dtype=PATH_RECORD)
    line["type"] = [MOVE_TO, 1, 1]
    line["x"], line["y"] = [0.0, 10.0, 10.0], [0.0, 0.0, 10.0]
    band = stroke_records(line, 1.0)
    assert band["type"][0] == MOVE_TO and len(band) == 2 * 3 + 1
    assert band["x"].min() == pytest.approx(-1.0) and band["y"].max() == pytest.approx(11.0)
    pieces = split_subpaths(np.concatenate([band] * 50), max_elements=40)
    assert all(piece["type"][0] == MOVE_TO for piece in pieces)
    assert sum(len(piece) for piece in pieces) == 50 * len(band)


# ----------------------------------------------------------------------------- rasters and export


def test_carlisle_dem_is_drawn_and_identified(qtbot, carlisle, restore_tree):
    restore_tree(carlisle.one_map)
    canvas, _ = _canvas(qtbot, carlisle.one_map)
    for layer in carlisle.one_map.tree:
        layer.visible = layer.name == "Terrain"
    xmin, ymin, xmax, ymax = carlisle.dem.bounds
    rows, cols = np.nonzero(np.isfinite(carlisle.dem.values))
    r, c = rows[len(rows) // 2], cols[len(cols) // 2]
    x, y = carlisle.dem.transform @ (c + 0.5, r + 0.5)
    canvas.zoom_to_extent(x - 300, y - 200, x + 300, y + 200)
    image = canvas.render_image(WIDTH, HEIGHT)
    assert not _close(_pixel(image, canvas, x, y), BACKGROUND[:3], tolerance=2)
    assert canvas.legend("Terrain")[0].shape == "ramp"

    with qtbot.waitSignal(canvas.identified, timeout=1000) as blocker:
        name, row, info = canvas.identify_at(x, y)
    assert (name, row) == ("Terrain", -1) == tuple(blocker.args[:2])
    assert (info["row"], info["col"]) == (r, c)
    assert info["value"] == pytest.approx(float(carlisle.dem.sample(np.array([x]), np.array([y]))[0]))

    for layer in carlisle.one_map.tree:
        layer.visible = True
    assert canvas.feature_at(x, y, layer="Terrain") == ("Terrain", -1)


def test_carlisle_renders_fast_and_exports_png(qtbot, carlisle, tmp_path):
    canvas, _ = _canvas(qtbot, carlisle.one_map)
    canvas.render_image(1600, 1000)
    started = time.perf_counter()
    image = canvas.render_image(1600, 1000)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"a full Carlisle redraw took {elapsed:.2f} s"
    assert len(carlisle.one_map.data["Buildings"]) > 12000
    assert (image.width(), image.height()) == (1600, 1000)

    target = tmp_path / "carlisle.png"
    canvas.save_png(target, 1600, 1000)
    written = QImage(str(target))
    assert (written.width(), written.height()) == (1600, 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["carlisle.png"]
