"""The main window on the sample cities, under Xvfb: open, toggle, identify,
select across views, scenes, bad files, screenshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")
pv.global_theme.multi_samples = 0
os.environ["TWIN_NO_DIALOGS"] = "1"

from twin.ui.main_window import MainWindow  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TWIN_CACHE_DIR", str(ROOT / ".twin-cache" / "tests"))
    monkeypatch.setenv("TWIN_LOG_DIR", str(tmp_path / "log"))
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    yield w
    w.close()


def _open(qtbot, window: MainWindow, path: Path | None = None) -> None:
    with qtbot.waitSignal(window.ready, timeout=120_000):
        window.open_path(path)


def _row_of(window: MainWindow, name: str) -> int:
    frame = window.city.buildings.frame
    return int(np.flatnonzero(frame["name"].to_numpy() == name)[0])


def test_opens_monaco_by_default_with_every_layer(qtbot, window: MainWindow) -> None:
    _open(qtbot, window)
    assert window.city.name == "Monaco"
    names = [layer.name for layer in window.city.one_map.tree.layers]
    assert set(names) == {"Points of interest", "Boundary", "Roads", "Buildings", "Water", "Natural", "Land use"}
    assert "OpenStreetMap" in window.attribution_label.text()
    assert window.scene3d is not None and "Buildings" in window.scene3d.meshes
    # the panel fills on the window's thread after the city's background job ends, not when the city is finished
    qtbot.waitUntil(lambda: window.city.finished and len(window.resources.rows()) > 0, timeout=60_000)
    assert window.resources.rows()["area_m2"].sum() == pytest.approx(window.city.land_classes.boundary_area_m2)


def test_uncached_city_shows_first_then_gets_its_land_classes_and_cache(qtbot, window: MainWindow,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from twin.city.city import load_city

    monkeypatch.setenv("TWIN_CACHE_DIR", str(tmp_path / "cache"))
    with qtbot.waitSignal(window.city_finished, timeout=120_000):
        _open(qtbot, window)
        # On screen before the land-class areas and the cache, which only the resources panel needs.
        assert window.scene3d is not None and window.city.land_classes is None
    city = window.city
    assert city.finished and city.network is not None and city.network.n_edges > 0
    assert window.resources.rows()["area_m2"].sum() == pytest.approx(city.land_classes.boundary_area_m2)
    cached = load_city(ROOT / "gis_data" / "monaco")
    assert cached.from_cache and cached.land_classes.table.equals(city.land_classes.table)


def test_toggle_and_reorder_reach_both_views(qtbot, window: MainWindow) -> None:
    _open(qtbot, window)
    tree = window.city.one_map.tree
    tree.find("Buildings").visible = False
    assert not window.scene3d.actors["Buildings"].GetVisibility()
    tree.find("Buildings").visible = True
    assert window.scene3d.actors["Buildings"].GetVisibility()
    tree.move("Land", 0, kind="group")
    assert [layer.name for layer in tree.layers][0] in ("Natural", "Land use")


def test_identify_a_known_building(qtbot, window: MainWindow) -> None:
    _open(qtbot, window)
    row = _row_of(window, "Le Millefiori")
    geom = window.city.buildings.frame.geometry.iloc[row].representative_point()
    window.map_canvas.zoom_to_extent(geom.x - 150, geom.y - 150, geom.x + 150, geom.y + 150)
    found = window.map_canvas.identify_at(geom.x, geom.y, "Buildings")
    assert found is not None and found[0] == "Buildings" and found[1] == row
    window._show_identified(*found)
    top = window.identify_tree.topLevelItem(0)
    values = {top.child(i).text(0): top.child(i).text(1) for i in range(top.childCount())}
    assert values["name"] == "Le Millefiori"
    assert values["height_m"] == "111.00" and values["height_source"] == "height_tag"


def test_selection_in_the_table_shows_in_both_views(qtbot, window: MainWindow) -> None:
    _open(qtbot, window)
    row = _row_of(window, "Le Millefiori")
    before = window.scene3d.colours("Buildings").copy()
    window.table.set_filter("Millefiori")
    window.table.select_rows([0])
    assert window.selection.layer == "Buildings" and list(window.selection.rows) == [row]
    after = window.scene3d.colours("Buildings")
    changed = np.flatnonzero((before != after).any(axis=1))
    feature = window.scene3d.layers["Buildings"].feature
    assert len(changed) > 0 and set(feature[changed]) == {row}
    # The identify panel follows the selection too.
    assert window.identify_tree.topLevelItem(0).text(0) == "Buildings"


def test_pick_in_3d_selects_the_building(qtbot, window: MainWindow) -> None:
    _open(qtbot, window)
    row = _row_of(window, "Le Millefiori")
    geom = window.city.buildings.frame.geometry.iloc[row].representative_point()
    height = float(window.city.buildings.frame["height_m"].iloc[row])
    plotter = window.plotter
    plotter.camera_position = [(geom.x, geom.y, 2000.0), (geom.x, geom.y, 0.0), (0, 1, 0)]
    plotter.renderer.ResetCameraClippingRange()
    plotter.render()
    renderer = plotter.renderer
    renderer.SetWorldPoint(geom.x, geom.y, height, 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    picked = window.pick_3d(int(round(x)), int(round(y)))
    assert picked == ("Buildings", row)
    assert list(window.selection.rows) == [row]


def test_scene_save_and_restore(qtbot, window: MainWindow, tmp_path: Path) -> None:
    _open(qtbot, window)
    tree = window.city.one_map.tree
    tree.find("Roads").visible = False
    tree.find("Buildings").opacity = 0.6
    window.map_canvas.zoom_to_extent(372500, 4843500, 373500, 4844500)
    path = window.save_scene(tmp_path / "mine.toml")
    saved_camera = window.plotter.camera_position
    _open(qtbot, window, ROOT / "gis_data" / "monaco")
    assert window.city.one_map.tree.find("Roads").visible
    _open(qtbot, window, path)
    tree = window.city.one_map.tree
    assert not tree.find("Roads").visible and tree.find("Buildings").opacity == pytest.approx(0.6)
    extent = window.map_canvas.view_extent()
    assert extent[0] <= 372500 + 1 and extent[2] >= 373500 - 1
    np.testing.assert_allclose(window.plotter.camera_position[1], saved_camera[1], atol=1e-6)


def test_sample_scenes_and_other_cities_open(qtbot, window: MainWindow) -> None:
    for name in ("helsinki", "carlisle"):
        _open(qtbot, window, ROOT / "scenes" / f"{name}.toml")
        assert window.city.name.lower().startswith(name)
        assert window.scene3d.meshes
    assert window.city.dem is not None  # Carlisle: terrain in 3D


def test_broken_city_gives_a_message_not_a_crash(qtbot, window: MainWindow, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "city.toml").write_text('[city]\nname = "Broken"\n\n[[layers]]\nname = "x"\nrole = "roads"\nsource = "no.osm.pbf"\n')
    with qtbot.waitSignal(window.failed, timeout=60_000) as blocker:
        window.open_path(folder)
    assert "no.osm.pbf" in blocker.args[0]
    assert window.city is None


def test_3d_render_shows_buildings_where_the_data_says(qtbot, window: MainWindow, tmp_path: Path) -> None:
    _open(qtbot, window)
    row = _row_of(window, "Le Millefiori")
    geom = window.city.buildings.frame.geometry.iloc[row].representative_point()
    plotter = window.plotter
    plotter.camera_position = [(geom.x, geom.y, 3000.0), (geom.x, geom.y, 0.0), (0, 1, 0)]
    plotter.renderer.ResetCameraClippingRange()
    renderer = plotter.renderer

    def pixel_over_building() -> np.ndarray:
        plotter.render()
        image = plotter.screenshot(return_img=True)
        renderer.SetWorldPoint(geom.x, geom.y, 111.0, 1.0)
        renderer.WorldToDisplay()
        x, y, _ = renderer.GetDisplayPoint()
        return image[image.shape[0] - 1 - int(round(y)), int(round(x))].astype(int)

    with_buildings = pixel_over_building()
    window.city.one_map.tree.find("Buildings").visible = False
    without = pixel_over_building()
    window.city.one_map.tree.find("Buildings").visible = True
    image = plotter.screenshot(return_img=True)
    assert image.std() > 5  # not blank
    assert np.abs(with_buildings - without).sum() > 30


def test_screenshot_command(tmp_path: Path) -> None:
    out = tmp_path / "app.png"
    env = dict(os.environ, TWIN_CACHE_DIR=str(ROOT / ".twin-cache" / "tests"), TWIN_SKIP_BOOTSTRAP="1",
               TWIN_LOG_DIR=str(tmp_path / "log"))
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "--screenshot", str(out), "--size", "1200x800"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    from PIL import Image

    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[:2] == (800, 1200)
    assert image.std() > 20


def _box_cityjson(path: Path, x: float, y: float) -> None:
    """One 20 m x 10 m x 30 m LOD1 building at (x, y) in EPSG:32632, as CityJSON 2.0."""
    import json

    ring = [(x, y), (x + 20, y), (x + 20, y + 10), (x, y + 10)]
    vertices = [[int(round(px * 1000)), int(round(py * 1000)), int(z * 1000)] for z in (0, 30) for px, py in ring]
    floor, roof = [3, 2, 1, 0], [4, 5, 6, 7]
    walls = [[i, (i + 1) % 4, (i + 1) % 4 + 4, i + 4] for i in range(4)]
    solid = {"type": "Solid", "lod": "1", "boundaries": [[[floor], [roof], *[[w] for w in walls]]]}
    path.write_text(json.dumps({
        "type": "CityJSON", "version": "2.0", "transform": {"scale": [0.001] * 3, "translate": [0, 0, 0]},
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/32632"},
        "CityObjects": {"tower": {"type": "Building", "geometry": [solid]}}, "vertices": vertices}))


def test_add_every_kind_of_file(qtbot, window: MainWindow, tmp_path: Path) -> None:
    _open(qtbot, window)
    one_map = window.city.one_map
    before = {layer.name for layer in one_map.tree.layers}
    schools = window.add_layer(ROOT / "gis_data" / "carlisle" / "schools.gpkg")
    assert [layer.name for layer in schools] == ["schools"]
    assert one_map.data["schools"].crs == window.city.crs and len(one_map.data["schools"]) == 30
    osm = window.add_layer(ROOT / "gis_data" / "monaco" / "monaco.osm.pbf")
    assert "Buildings (2)" in {layer.name for layer in osm}
    raster = window.add_layer(ROOT / "gis_data" / "carlisle" / "rain_zones.tif")
    assert raster and raster[0].kind == "raster"
    cube = pv.Cube(x_length=40, y_length=40, z_length=60).translate((0, 0, 30))
    cube.save(tmp_path / "kiosk.stl")
    mesh = window.add_layer(tmp_path / "kiosk.stl")
    assert mesh[0].kind == "mesh" and mesh[0].name in window.scene3d.actors
    xmin, ymin, xmax, ymax = window.city.extent()
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    assert window.scene3d.meshes[mesh[0].name].center[0] == pytest.approx(cx, abs=1.0)
    _box_cityjson(tmp_path / "tower.city.json", cx, cy)
    city_layers = window.add_layer(tmp_path / "tower.city.json")
    kinds = sorted(layer.kind for layer in city_layers)
    assert kinds == ["mesh", "vector"]
    footprint = next(one_map.data[layer.name] for layer in city_layers if layer.kind == "vector")
    assert footprint.geometry.iloc[0].area == pytest.approx(200.0, abs=1e-3)
    assert float(footprint["height_m"].iloc[0]) == pytest.approx(30.0)
    # A broken file is refused with a message and nothing is added.
    (tmp_path / "broken.geojson").write_text("{not json")
    count = len(list(one_map.tree.layers))
    assert window.add_layer(tmp_path / "broken.geojson") == []
    assert len(list(one_map.tree.layers)) == count
    assert before < {layer.name for layer in one_map.tree.layers}


def test_cancel_leaves_the_window_as_it_was(qtbot, window: MainWindow, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TWIN_CACHE_DIR", str(tmp_path / "fresh-cache"))  # a real (slow) first load
    with qtbot.waitSignal(window.failed, timeout=60_000) as blocker:
        window.open_path(ROOT / "gis_data" / "monaco")
        window.cancel_job()
    assert blocker.args == ["cancelled"]
    assert window.city is None and not window.progress.isVisible()


def test_drop_a_file_adds_it(qtbot, window: MainWindow) -> None:
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    _open(qtbot, window)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(ROOT / "gis_data" / "carlisle" / "inflows.geojson"))])
    event = QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert window.city.one_map.tree.find("inflows") is not None


def test_sun_position_lights_walls_facing_it(qtbot, window: MainWindow) -> None:
    """A wall facing the sun is brighter than one facing away; moving the sun swaps them."""
    _open(qtbot, window)
    row = _row_of(window, "Le Millefiori")
    geom = window.city.buildings.frame.geometry.iloc[row]
    cx, cy = geom.centroid.x, geom.centroid.y
    plotter = window.plotter
    renderer = plotter.renderer

    def wall_pixel() -> float:
        """Brightness of the building's south wall, seen from the south."""
        plotter.camera_position = [(cx, cy - 900.0, 120.0), (cx, cy, 60.0), (0, 0, 1)]
        renderer.ResetCameraClippingRange()
        plotter.render()
        image = plotter.screenshot(return_img=True).astype(float)
        renderer.SetWorldPoint(cx, cy, 55.0, 1.0)
        renderer.WorldToDisplay()
        x, y, _ = renderer.GetDisplayPoint()
        return float(image[image.shape[0] - 1 - int(round(y)), int(round(x))].sum())

    window.set_sun(180.0, 30.0)  # sun in the south: the south face (seen by the camera) is lit
    lit = wall_pixel()
    window.set_sun(0.0, 30.0)  # sun in the north: the same face is in shade
    shade = wall_pixel()
    assert lit > shade + 30
    with pytest.raises(ValueError):
        window.set_sun(90.0, -5.0)


def test_3d_view_draws_the_buildings_level_of_detail_while_the_camera_moves(qtbot, window: MainWindow) -> None:
    """Frames drawn during a drag show the cheap buildings; the frame after it settles, the full ones."""
    _open(qtbot, window)
    scene, plotter = window.scene3d, window.plotter
    iren = plotter.iren.interactor
    drawn: list[str] = []

    def record(*_) -> None:
        lod, full = scene.lod_actors["Buildings"].GetVisibility(), scene.actors["Buildings"].GetVisibility()
        drawn.append("lod" if lod and not full else "full" if full and not lod else "both or none")

    plotter.render_window.AddObserver("StartEvent", record)
    x, y = plotter.window_size[0] // 2, plotter.window_size[1] // 2
    iren.SetEventInformation(x, y, 0, 0)
    iren.InvokeEvent("LeftButtonPressEvent")
    for step in range(1, 4):
        iren.SetEventInformation(x + 15 * step, y + 5 * step, 0, 0)
        iren.InvokeEvent("MouseMoveEvent")
    iren.InvokeEvent("LeftButtonReleaseEvent")
    assert drawn[:3] == ["lod"] * 3 and scene.lod_active
    qtbot.waitUntil(lambda: not scene.lod_active, timeout=5_000)
    assert drawn[-1] == "full"
    # A click does not move the camera: the frame after it is the full one at once.
    drawn.clear()
    iren.SetEventInformation(x, y, 0, 0)
    iren.InvokeEvent("LeftButtonPressEvent")
    iren.InvokeEvent("LeftButtonReleaseEvent")
    assert not scene.lod_active and drawn and set(drawn) == {"full"}


def test_waiting_for_a_job_lets_it_finish_without_the_event_loop(qtbot) -> None:
    """Closing the window waits for background jobs: the wait must not hold the GIL or
    need the GUI thread's event loop, else a job running Python code never ends."""
    import time

    from twin.ui.workers import Job

    def spin(_feedback) -> int:
        end, count = time.perf_counter() + 0.3, 0
        while time.perf_counter() < end:
            count += 1
        return count

    job = Job(spin)
    job.start()
    assert job.wait(20_000) and not job.running
