"""The 3D scene: merged meshes (twin.scene.meshes), the city scene and its exports.

Rendering runs off-screen under Xvfb (pytest-xvfb starts it).
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
import pyvista as pv
import shapely

from twin.scene.city_scene import GROUND, SELECTED_COLOUR, CityScene, camera_for_extent, top_down_camera
from twin.scene.export import export_gltf, screenshot
from twin.scene.meshes import (
    TerrainSurface,
    buildings_lod,
    extrude_polygons,
    hillshade,
    lines_mesh,
    points_mesh,
    polygons_mesh,
    TERRAIN_LOD_FACTOR,
    terrain_mesh,
)
from twin.geo.style import GraduatedStyle, parse_colour

pv.global_theme.multi_samples = 0
WINDOW = (800, 600)


def _roof_area(mesh: pv.PolyData) -> float:
    roofs = np.asarray(mesh.cell_data["Normals"])[:, 2] > 0.99
    return float(mesh.extract_cells(np.flatnonzero(roofs)).extract_surface(algorithm="dataset_surface").area)


# ----------------------------------------------------------------------------- meshes


def _grid_city(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rectangular footprints on a 30 m grid and their heights (5-60 m)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    w, h = rng.uniform(8, 25, n), rng.uniform(8, 25, n)
    x0, y0 = (i % side) * 30.0 + rng.uniform(0, 30 - w), (i // side) * 30.0 + rng.uniform(0, 30 - h)
    return shapely.box(x0, y0, x0 + w, y0 + h), rng.uniform(5, 60, n)


def test_level_of_detail_of_a_big_city_is_far_smaller_and_keeps_its_extent() -> None:
    geoms, height = _grid_city(20_000)
    full = extrude_polygons(geoms, 0.0, height)
    lod = buildings_lod(geoms, 0.0, height, max_boxes=1_000)
    assert lod.n_cells <= 5 * 1_000 and full.n_cells >= 20 * lod.n_cells
    # Same ground, same tallest roof (the skyline is kept), and the same footprint within 2 %
    # (blocks keep their tile's built area, so they shrink a little from its edges).
    assert lod.bounds[4] == pytest.approx(0.0) and lod.bounds[5] == pytest.approx(height.max())
    assert np.allclose(lod.bounds[:4], full.bounds[:4], atol=0.02 * (full.bounds[1] - full.bounds[0]))
    feature = np.asarray(lod.cell_data["feature"])
    assert feature.min() >= 0 and feature.max() < len(geoms)
    assert int(np.argmax(height)) in feature
    # Roofs face up and walls sideways, as in the full mesh, for lighting.
    normals = np.asarray(lod.cell_data["Normals"])
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0)
    assert set(np.round(np.abs(normals[:, 2]), 6)) == {0.0, 1.0}


def test_level_of_detail_of_a_small_city_keeps_every_building() -> None:
    square = shapely.box(0, 0, 10, 10)
    ell = shapely.Polygon([(20, 0), (40, 0), (40, 5), (25, 5), (25, 20), (20, 20)])
    lod = buildings_lod(np.array([square, ell]), 0.0, np.array([12.0, 30.0]), z_scale=2.0)
    feature = np.asarray(lod.cell_data["feature"])
    assert (feature == 0).sum() == 5  # the square: a roof and four walls
    # The L is far from its rotated rectangle: it keeps its shape (no box over its yard).
    assert lod.extract_cells(np.flatnonzero(feature == 1)).bounds[5] == pytest.approx(60.0)
    assert _roof_area(lod.extract_cells(np.flatnonzero(feature == 1))) == pytest.approx(ell.area)


def test_extruded_box_is_a_closed_prism_of_the_right_volume() -> None:
    mesh = extrude_polygons([shapely.box(0, 0, 10, 20)], 0.0, 15.0, floor=True)
    assert mesh.triangulate().volume == pytest.approx(3000.0)
    assert mesh.n_cells == 2 + 4 + 2  # roof triangles, walls, floor triangles
    assert mesh.bounds[4:] == (0.0, 15.0)
    # Outward normals: each wall's normal points away from the box centre.
    centres = mesh.cell_centers().points - np.array([5.0, 10.0, 7.5])
    normals = np.asarray(mesh.cell_data["Normals"])
    assert (np.einsum("ij,ij->i", centres, normals) > 0).all()


def test_vertical_exaggeration_scales_heights() -> None:
    mesh = extrude_polygons([shapely.box(0, 0, 10, 20)], 2.0, 12.0, z_scale=3.0, floor=True)
    assert mesh.bounds[4:] == (6.0, 36.0)
    assert mesh.triangulate().volume == pytest.approx(200 * 30.0)


def test_roof_of_a_polygon_with_a_hole_leaves_the_hole_open() -> None:
    ring = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (2, 4), (4, 4), (4, 2)]])
    mesh = extrude_polygons([ring], 0.0, 5.0, floor=True)
    assert _roof_area(mesh) == pytest.approx(96.0)
    assert mesh.triangulate().volume == pytest.approx(96.0 * 5.0)
    # Walls along the hole face into it: the inner ring's walls point towards (3, 3).
    walls = np.flatnonzero(np.abs(np.asarray(mesh.cell_data["Normals"])[:, 2]) < 1e-6)
    centres = mesh.cell_centers().points[walls]
    inner = (np.abs(centres[:, 0] - 3) <= 1.0 + 1e-9) & (np.abs(centres[:, 1] - 3) <= 1.0 + 1e-9)
    towards_hole = np.einsum("ij,ij->i", np.array([3.0, 3.0, 0.0]) - centres[inner] * [1, 1, 0],
                             np.asarray(mesh.cell_data["Normals"])[walls][inner])
    assert inner.sum() == 4 and (towards_hole > 0).all()


def test_feature_array_maps_cells_to_their_polygon() -> None:
    polys = [shapely.box(0, 0, 10, 10),
             shapely.Polygon([(20, 0), (30, 0), (25, 8)]),
             shapely.MultiPolygon([shapely.box(40, 0, 45, 5), shapely.box(50, 0, 55, 5)])]
    mesh = extrude_polygons(polys, 0.0, np.array([5.0, 10.0, 20.0]))
    feature = np.asarray(mesh.cell_data["feature"])
    assert set(feature) == {0, 1, 2}
    centres = mesh.cell_centers().points
    for i, poly in enumerate(polys):
        inside = shapely.covers(poly.buffer(1e-6), shapely.points(centres[feature == i][:, :2]))
        assert inside.all()
        tops = centres[feature == i][:, 2]
        assert tops.max() == pytest.approx([5.0, 10.0, 20.0][i])


def test_flat_polygons_lines_and_points() -> None:
    polys = polygons_mesh([shapely.box(0, 0, 10, 10), None, shapely.box(20, 0, 30, 5)], np.array([1.0, 0.0, 2.0]),
                          z_offset=0.5)
    assert polys.area == pytest.approx(150.0)
    assert set(np.asarray(polys.cell_data["feature"])) == {0, 2}
    assert sorted(set(polys.points[:, 2])) == [1.5, 2.5]

    slope = lambda x, y: 0.1 * x  # noqa: E731 - ground rising 1 m per 10 m eastwards
    lines = lines_mesh([shapely.LineString([(0, 0), (100, 0)]), shapely.box(0, 10, 10, 20)], slope, 1.0,
                       max_segment=10.0)
    assert list(lines.cell_data["feature"]) == [0, 1]
    first = lines.points[:11]
    assert np.allclose(first[:, 2], 0.1 * first[:, 0] + 1.0)  # densified and draped
    assert lines.n_lines == 2

    pts = points_mesh(np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([10.0, 20.0]), z_offset=1.0, z_scale=2.0)
    assert pts.n_cells == 2 and list(pts.points[:, 2]) == [21.0, 41.0]


def test_hillshade_is_uniform_on_flat_ground_and_brighter_facing_the_light() -> None:
    flat = hillshade(np.full((20, 20), 50.0), 5.0)
    assert np.ptp(flat) == 0 and flat[0, 0] == pytest.approx(np.sin(np.radians(45)))
    rows, cols = np.mgrid[0:20, 0:20].astype(float)
    # The default light comes from the north-west (azimuth 315): a slope facing
    # north-west (ground rising to the south-east) is lit, its mirror is shaded.
    facing = (cols + rows) * 2.0   # rises east and south (row numbers grow southwards)
    away = -facing
    lit, dark = hillshade(facing, 5.0), hillshade(away, 5.0)
    assert lit[10, 10] > flat[10, 10] > dark[10, 10]
    assert 0.0 <= dark.min() and lit.max() <= 1.0
    with_gap = facing.copy()
    with_gap[5, 5] = np.nan
    assert np.isfinite(hillshade(with_gap, 5.0)).all()


def test_terrain_surface_decimates_and_drops_nodata() -> None:
    from affine import Affine
    from pyproj import CRS

    from twin.geo.raster import Grid

    values = np.arange(100 * 120, dtype=np.float32).reshape(100, 120) / 100
    values[:10, :10] = np.nan
    grid = Grid(values, Affine(2.0, 0, 1000.0, 0, -2.0, 5000.0), CRS.from_epsg(32632))
    mesh = terrain_mesh(grid, max_cells=2000)
    surface = TerrainSurface.from_grid(grid, 2000)
    assert mesh.n_cells <= 2000 and surface.stride > 1
    assert np.isfinite(mesh.points).all()
    assert mesh.point_data["elevation"].min() >= np.nanmin(values)
    # Bilinear sampling between sample points follows the plane exactly.
    x, y = np.array([1100.3]), np.array([4900.7])
    row, col = (5000.0 - y) / 2.0 - 0.5, (x - 1000.0) / 2.0 - 0.5
    assert surface(x, y)[0] == pytest.approx(((row * 120 + col) / 100)[0], abs=1e-3)


# ----------------------------------------------------------------------------- the sample cities


@pytest.fixture(scope="module")
def monaco(gis_data: Path):
    from twin.city.city import load_city

    return load_city(gis_data / "monaco")


@pytest.fixture(scope="module")
def monaco_scene(monaco) -> CityScene:
    scene = CityScene(monaco)
    scene.build()
    return scene


@pytest.fixture(scope="module")
def carlisle(gis_data: Path):
    from twin.city.city import load_city

    return load_city(gis_data / "carlisle")


def _plotter(scene: CityScene) -> pv.Plotter:
    plotter = pv.Plotter(off_screen=True, window_size=WINDOW)
    plotter.set_background("white")
    scene.add_to_plotter(plotter)
    return plotter


def _display_xy(plotter: pv.Plotter, point: tuple[float, float, float]) -> tuple[int, int]:
    """Image (column, row) of a world point in the last rendered frame."""
    renderer = plotter.renderer
    renderer.SetWorldPoint(*point, 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    return int(round(x)), WINDOW[1] - 1 - int(round(y))


def test_monaco_scene_has_one_feature_per_building(monaco, monaco_scene: CityScene) -> None:
    meshes = monaco_scene.meshes
    assert {"Buildings", "Roads", GROUND, "Water", "Land use", "Points of interest", "Boundary"} <= set(meshes)
    feature = np.asarray(meshes["Buildings"].cell_data["feature"])
    assert len(np.unique(feature)) == len(monaco.buildings)
    assert meshes["Buildings"].cell_data["RGBA"].shape == (meshes["Buildings"].n_cells, 4)
    assert meshes["Buildings"].cell_data["RGBA"].dtype == np.uint8
    # Roofs of Le Millefiori stand at its height (flat terrain: base 0).
    row = int(np.flatnonzero(monaco.buildings.frame["name"] == "Le Millefiori")[0])
    cells = np.flatnonzero(feature == row)
    tops = meshes["Buildings"].extract_cells(cells).points[:, 2]
    assert tops.max() == pytest.approx(111.0) and tops.min() == pytest.approx(0.0)
    assert monaco_scene.pick_feature("Buildings", int(cells[0])) == row
    assert monaco_scene.pick_feature(GROUND, 0) is None


def test_top_down_render_shows_le_millefiori(monaco, monaco_scene: CityScene) -> None:
    plotter = _plotter(monaco_scene)
    try:
        plotter.enable_parallel_projection()
        plotter.camera_position = top_down_camera(monaco.extent())
        plotter.reset_camera()
        image = plotter.screenshot(return_img=True)
        assert image.shape[:2] == (WINDOW[1], WINDOW[0])
        assert image.reshape(-1, image.shape[-1]).std(axis=0).max() > 10  # not blank
        tower = monaco.buildings.frame.query("name == 'Le Millefiori'").geometry.iloc[0]
        centre = tower.representative_point()
        col, row = _display_xy(plotter, (centre.x, centre.y, 111.0))
        with_building = image[row, col, :3].astype(int)
        # Picking that pixel finds the Buildings actor and, through ``feature``, the tower's row.
        from vtkmodules.vtkRenderingCore import vtkCellPicker

        picker = vtkCellPicker()
        picker.SetTolerance(0.0005)
        assert picker.Pick(col, WINDOW[1] - 1 - row, 0, plotter.renderer)
        assert monaco_scene.layer_of_actor(picker.GetActor()) == "Buildings"
        tower_row = int(np.flatnonzero(monaco.buildings.frame["name"] == "Le Millefiori")[0])
        assert monaco_scene.pick_feature("Buildings", picker.GetCellId()) == tower_row
        monaco_scene.actors["Buildings"].SetVisibility(False)
        plotter.render()
        without = plotter.screenshot(return_img=True)[row, col, :3].astype(int)
        assert np.abs(with_building - without).max() > 20
        # The tower is the tallest class of the default height ramp: dark brick, not ground beige.
        assert with_building.sum() < without.sum()
    finally:
        plotter.close()


def test_set_selection_recolours_exactly_the_selected_features(monaco_scene: CityScene) -> None:
    rgba = monaco_scene.colours("Buildings")
    before = np.array(rgba)
    feature = np.asarray(monaco_scene.meshes["Buildings"].cell_data["feature"])
    rows = [3, 10, 500]
    monaco_scene.set_selection("Buildings", rows)
    after = np.array(monaco_scene.colours("Buildings"))
    changed = (after != before).any(axis=1)
    selected = np.isin(feature, rows)
    assert (changed == selected).all()
    assert (after[selected] == parse_colour(SELECTED_COLOUR)).all()
    assert monaco_scene.colours("Buildings") is not None and rgba.shape == after.shape

    # Selecting in another layer gives the buildings their colours back; clearing clears all.
    monaco_scene.set_selection("Roads", [0])
    assert (np.array(monaco_scene.colours("Buildings")) == before).all()
    roads_feature = np.asarray(monaco_scene.meshes["Roads"].cell_data["feature"])
    assert (np.array(monaco_scene.colours("Roads"))[roads_feature == 0] == parse_colour(SELECTED_COLOUR)).all()
    monaco_scene.set_selection("", [])
    assert not (np.array(monaco_scene.colours("Roads")) == parse_colour(SELECTED_COLOUR)).all(axis=1).any()


def test_selection_and_style_update_the_actor_in_place(monaco, monaco_scene: CityScene) -> None:
    plotter = _plotter(monaco_scene)
    try:
        actors = dict(monaco_scene.actors)
        monaco_scene.reset_camera(plotter)
        first = plotter.screenshot(return_img=True)
        monaco_scene.set_selection("Buildings", np.arange(len(monaco.buildings)))
        plotter.render()
        selected = plotter.screenshot(return_img=True)
        assert (np.abs(first.astype(int) - selected.astype(int)).max(axis=2) > 30).sum() > 500

        layer = monaco.one_map.tree.find("Buildings")
        old_style, old_opacity = layer.style, layer.opacity
        layer.visible = False
        monaco_scene.sync_layer(plotter, layer)
        assert not actors["Buildings"].GetVisibility()
        layer.visible, layer.opacity = True, 0.5
        layer.style = GraduatedStyle(field="height_m", ramp="viridis")
        monaco_scene.set_selection("", [])
        monaco_scene.sync_layer(plotter, layer)
        assert actors["Buildings"].GetVisibility() and actors["Buildings"].GetProperty().GetOpacity() == 0.5
        colours = np.asarray(monaco_scene.colours("Buildings"))
        assert len(np.unique(colours, axis=0)) == 5  # five viridis classes
        assert monaco_scene.actors == actors  # the same actors throughout
        layer.style, layer.opacity = old_style, old_opacity
        monaco_scene.sync_layer(plotter, layer)
    finally:
        monaco_scene.set_selection("", [])
        plotter.close()


def test_level_of_detail_is_drawn_while_moving_and_the_full_mesh_at_rest(monaco, monaco_scene: CityScene) -> None:
    full, lod = monaco_scene.meshes["Buildings"], monaco_scene.layers["Buildings"].lod
    assert lod is not None and lod.n_cells < 0.75 * full.n_cells
    assert np.allclose(lod.bounds, full.bounds, atol=5.0)
    plotter = _plotter(monaco_scene)
    try:
        plotter.enable_parallel_projection()
        plotter.camera_position = top_down_camera(monaco.extent())
        plotter.reset_camera()
        tower_row = int(np.flatnonzero(monaco.buildings.frame["name"] == "Le Millefiori")[0])
        centre = monaco.buildings.frame.geometry.iloc[tower_row].representative_point()
        full_actor, lod_actor = monaco_scene.actors["Buildings"], monaco_scene.lod_actors["Buildings"]

        def tower_pixel() -> np.ndarray:
            plotter.render()
            col, row = _display_xy(plotter, (centre.x, centre.y, 111.0))
            return plotter.screenshot(return_img=True)[row, col, :3].astype(int)

        still = tower_pixel()
        assert full_actor.GetVisibility() and not lod_actor.GetVisibility()
        assert monaco_scene.set_lod(True) and not monaco_scene.set_lod(True)
        moving = tower_pixel()
        assert lod_actor.GetVisibility() and not full_actor.GetVisibility() and not lod_actor.GetPickable()
        # Selecting the tower recolours its level of detail too.
        monaco_scene.set_selection("Buildings", [tower_row])
        selected = tower_pixel()
        monaco_scene.set_selection("Buildings", [])
        assert monaco_scene.set_lod(False)
        assert full_actor.GetVisibility() and not lod_actor.GetVisibility()
        assert np.array_equal(tower_pixel(), still)
        monaco_scene.actors["Buildings"].SetVisibility(False)
        ground = tower_pixel()
        monaco_scene.sync_all()
        # The tower shows in both states: dark brick, not ground beige; yellow when selected.
        for pixel in (still, moving):
            assert np.abs(pixel - ground).max() > 20 and pixel.sum() < ground.sum()
        assert selected[0] > 150 and selected[1] > 120 and selected[2] < 80
    finally:
        plotter.close()


def test_shadows_compile_for_every_layer_and_unlit_layers_come_back(monaco_scene: CityScene,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """VTK's shadow pass needs lit shaders: flat areas and lines are lit while shadows are on
    (else VTK logs shader compile errors and draws them wrongly)."""
    from twin.scene.city_scene import set_sun

    plotter = _plotter(monaco_scene)
    try:
        monaco_scene.reset_camera(plotter)
        with caplog.at_level(logging.ERROR):
            set_sun(plotter, monaco_scene, 180.0, 30.0, shadows=True)
            plotter.screenshot(return_img=True)
            monaco_scene.set_lod(True)
            plotter.screenshot(return_img=True)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:500]
        assert monaco_scene.actors["Roads"].GetProperty().GetRenderLinesAsTubes()
        assert monaco_scene.actors[GROUND].GetProperty().GetLighting()
        set_sun(plotter, monaco_scene, 180.0, 30.0, shadows=False)
        assert not monaco_scene.actors["Roads"].GetProperty().GetRenderLinesAsTubes()
        assert not monaco_scene.actors[GROUND].GetProperty().GetLighting()
        assert not monaco_scene.lod_actors["Buildings"].GetProperty().GetLighting()
    finally:
        monaco_scene.set_lod(False)
        plotter.close()


def test_default_camera_keeps_the_whole_city_in_view(monaco, monaco_scene: CityScene) -> None:
    plotter = _plotter(monaco_scene)
    try:
        monaco_scene.reset_camera(plotter)
        position, focal, up = plotter.camera_position
        assert position[1] < focal[1] and position[2] > focal[2]  # from the south, above
        assert abs(position[0] - focal[0]) < 1e-6
        plotter.render()
        xmin, ymin, xmax, ymax = monaco.extent()
        for x in (xmin, xmax):
            for y in (ymin, ymax):
                col, row = _display_xy(plotter, (x, y, 0.0))
                assert 0 <= col < WINDOW[0] and 0 <= row < WINDOW[1]
    finally:
        plotter.close()
    camera = camera_for_extent((0, 0, 1000, 1000), elevation_deg=90.0 - 1e-6)
    assert camera[0][2] > 1000


def test_carlisle_terrain_is_decimated_and_keeps_the_elevation_range(carlisle) -> None:
    dem = carlisle.dem
    mesh = terrain_mesh(dem, max_cells=300_000)
    assert mesh.n_cells <= 300_000
    elevation = np.asarray(mesh.point_data["elevation"])
    lo, hi = np.nanmin(dem.values), np.nanmax(dem.values)
    assert lo <= elevation.min() and elevation.max() <= hi
    # Within the decimation: the sampled range covers nearly all of the DEM's.
    assert elevation.min() - lo < 1.0 and hi - elevation.max() < 0.05 * (hi - lo)
    assert np.isfinite(mesh.points).all()


def test_carlisle_scene_drapes_features_on_the_terrain(carlisle) -> None:
    scene = CityScene(carlisle, terrain_max_cells=200_000)
    meshes = scene.build(z_scale=2.0)
    terrain = meshes["Terrain"]
    assert terrain.n_cells <= 200_000 and GROUND not in meshes
    assert terrain.point_data["RGBA"].shape == (terrain.n_points, 4)
    # Buildings stand on their base elevations, scaled.
    buildings = meshes["Buildings"]
    assert len(np.unique(buildings.cell_data["feature"])) == len(carlisle.buildings)
    frame = carlisle.buildings.frame
    assert buildings.bounds[4] == pytest.approx(2.0 * float(frame["base_m"].min()), abs=1e-3)
    # The boundary line lies 2 m above the (exaggerated) drawn surface.
    line = meshes["Boundary"].points
    assert np.allclose(line[:, 2], 2.0 * scene.surface(line[:, 0], line[:, 1]) + 2.0)
    # Land cover tints the terrain; hiding it changes the colours in place.
    before = np.array(scene.colours("Terrain"))
    live = scene.colours("Terrain")
    cover = carlisle.one_map.tree.find("Land cover")
    cover.visible = False
    try:
        scene.sync_layer(None, cover)
        assert (np.array(live) != before).any()
    finally:
        cover.visible = True
        scene.sync_layer(None, cover)
    assert (np.array(scene.colours("Terrain")) == before).all()


def test_terrain_level_of_detail_is_drawn_while_moving_and_the_full_mesh_at_rest(carlisle) -> None:
    scene = CityScene(carlisle, terrain_max_cells=200_000)
    scene.build(z_scale=2.0)
    terrain = scene.layers["Terrain"]
    full, lod = terrain.mesh, terrain.lod
    assert lod is not None and 10 * lod.n_cells < full.n_cells
    coarse_cell = TERRAIN_LOD_FACTOR * max(scene.surface.cell_size)
    assert np.allclose(lod.bounds[:4], full.bounds[:4], atol=coarse_cell)
    # Each point sits on the full mesh's point at the same DEM cell (where it has one: the
    # level of detail reaches a little past the data), exaggerated the same way, and takes its colour.
    at = np.asarray(lod.point_data["full_point"])
    same_cell = np.asarray(full.point_data["dem_cell"])[at] == np.asarray(lod.point_data["dem_cell"])
    assert np.array_equal(same_cell, np.isin(lod.point_data["dem_cell"], full.point_data["dem_cell"]))
    assert same_cell.mean() > 0.5
    assert np.allclose(lod.points[same_cell], full.points[at[same_cell]])
    assert np.allclose(lod.points[:, 2], 2.0 * np.asarray(lod.point_data["elevation"]))
    assert np.array_equal(lod.point_data["RGBA"], np.asarray(scene.colours("Terrain"))[at])

    tree = carlisle.one_map.tree
    shown = {layer.name: layer.visible for layer in tree}
    plotter = _plotter(scene)
    try:
        for layer in tree:  # only the terrain, so the pixel below shows it
            layer.visible = layer.role == "dem"
        scene.sync_all()
        plotter.enable_parallel_projection()
        plotter.camera_position = top_down_camera(carlisle.extent(), scene.ground_z())
        plotter.reset_camera()
        full_actor, lod_actor = scene.actors["Terrain"], scene.lod_actors["Terrain"]
        valid = np.argwhere(scene.surface.valid)
        r, c = valid[len(valid) // 2]
        point = (scene.surface.xs[c], scene.surface.ys[r], 2.0 * float(scene.surface.values[r, c]))

        def terrain_pixel() -> np.ndarray:
            plotter.render()
            col, row = _display_xy(plotter, point)
            return plotter.screenshot(return_img=True)[row, col, :3].astype(int)

        still = terrain_pixel()
        assert full_actor.GetVisibility() and not lod_actor.GetVisibility()
        assert scene.set_lod(True)
        moving = terrain_pixel()
        assert lod_actor.GetVisibility() and not full_actor.GetVisibility() and not lod_actor.GetPickable()
        assert scene.set_lod(False)
        assert full_actor.GetVisibility() and not lod_actor.GetVisibility()
        full_actor.SetVisibility(False)
        blank = terrain_pixel()
        for pixel in (still, moving):
            assert np.abs(pixel - blank).max() > 20
    finally:
        for layer in tree:
            layer.visible = shown[layer.name]
        scene.sync_all()
        plotter.close()


# ----------------------------------------------------------------------------- exports


def test_gltf_export_and_screenshot(monaco_scene: CityScene, tmp_path: Path) -> None:
    plotter = _plotter(monaco_scene)
    try:
        monaco_scene.reset_camera(plotter)
        glb = export_gltf(plotter, tmp_path / "monaco.glb")
        raw = glb.read_bytes()
        magic, version, length = struct.unpack("<4sII", raw[:12])
        assert (magic, version, length) == (b"glTF", 2, len(raw))
        text = export_gltf(plotter, tmp_path / "monaco.gltf")
        data = json.loads(text.read_text())
        assert data["asset"]["version"] == "2.0"
        assert all(b["uri"].startswith("data:") for b in data["buffers"])
        # Both read back as meshes with vertex colours (cell colours are moved to points on export).
        for path in (glb, text):
            blocks = [b for b in pv.read(path).recursive_iterator() if b is not None]
            assert sum(b.n_cells for b in blocks) >= monaco_scene.meshes["Buildings"].n_cells
            assert all("COLOR_0" in b.point_data for b in blocks)
        # The actors draw their own meshes again afterwards.
        mapper_input = pv.wrap(monaco_scene.actors["Buildings"].GetMapper().GetInput())
        assert mapper_input.n_cells == monaco_scene.meshes["Buildings"].n_cells and "RGBA" in mapper_input.cell_data
        shot = screenshot(plotter, tmp_path / "view.png", (320, 200))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["monaco.glb", "monaco.gltf", "view.png"]  # no temporaries
        with pytest.raises(ValueError):
            export_gltf(plotter, tmp_path / "monaco.obj")
    finally:
        plotter.close()
