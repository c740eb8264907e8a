"""3D scene build and frame times: one merged mesh per layer versus one actor per building.

For each sample city and a synthetic city of 100,000 buildings (random
non-overlapping rectangles on a 30 m grid, heights 5-60 m) it prints the time
to build the scene's meshes, the median frame time at 1600x1000 off-screen
while the camera turns (20 frames) with the full meshes (the still image)
and with the level of detail of the buildings and the terrain (what is drawn
while the camera moves), the same two with only the terrain shown (a
"terrain only" line, for cities with a DEM), and the same for the naive
scene with one actor per building, the anchor the two ratios are taken
against.  One actor per building is too slow to build and draw at 100,000,
so there it is measured on 5,000 buildings and scaled per actor (marked
"extrapolated"); the sample cities are measured in full.
Everything is measured in this run, on this machine (under Xvfb that is
Mesa's software rasteriser, so frame times are CPU-bound): the ratios are
what to watch.

    xvfb-run -a .venv/bin/python bench/render.py [--cities monaco carlisle] [--synthetic 100000]
    xvfb-run -a .venv/bin/python bench/render.py --shots /tmp      # just save the default views
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CITIES = ("monaco", "helsinki", "carlisle")
WINDOW = (1600, 1000)
FRAMES = 20
NAIVE_SAMPLE = 5_000


def synthetic_city(n: int, seed: int = 0) -> SimpleNamespace:
    """A flat city of ``n`` rectangular buildings, duck-typed like :class:`~twin.city.city.City`
    for what the scene reads (a layer tree with one buildings layer, the derived buildings)."""
    import geopandas as gpd
    import shapely

    from twin.geo.layers import Layer, LayerTree

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    cell = 30.0
    w, h = rng.uniform(8, 25, n), rng.uniform(8, 25, n)
    x0 = (i % side) * cell + rng.uniform(0, cell - w)
    y0 = (i // side) * cell + rng.uniform(0, cell - h)
    frame = gpd.GeoDataFrame({"height_m": rng.uniform(5, 60, n).astype(np.float32),
                              "base_m": np.full(n, np.nan, dtype=np.float32)},
                             geometry=shapely.box(x0, y0, x0 + w, y0 + h), crs="EPSG:3857")
    layer = Layer(name="Buildings", role="buildings", kind="vector")
    layer.data = frame
    tree = LayerTree()
    tree.add(layer)
    spec = SimpleNamespace(name="Buildings", poi_kind=None, classes=None)
    extent = (0.0, 0.0, side * cell, side * cell)
    one_map = SimpleNamespace(tree=tree, data_for_role=lambda role: [(spec, frame)] if role == "buildings" else [])
    return SimpleNamespace(one_map=one_map, buildings=SimpleNamespace(frame=frame), dem=None, landcover=None,
                           network=None, manifest=SimpleNamespace(layers=[spec]), extent=lambda: extent)


def frame_times(plotter, frames: int = FRAMES) -> float:
    """Median seconds per frame while the camera turns 360 degrees around the scene."""
    window = plotter.render_window
    window.Render()
    times = []
    for _ in range(frames):
        plotter.camera.Azimuth(360.0 / frames)
        plotter.renderer.ResetCameraClippingRange()
        t = time.perf_counter()
        window.Render()
        window.WaitForCompletion()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def terrain_frame_times(scene, plotter) -> tuple[float, float] | None:
    """Median frame seconds with only the terrain shown, full and level of detail (None: no terrain).

    Leaves every actor as the scene's layers say and the full meshes drawn."""
    terrain = next((name for name, lm in scene.layers.items() if lm.role == "dem"), None)
    if terrain is None:
        return None
    shown = {name: actor.GetVisibility() for name, actor in scene.actors.items()}
    try:
        for name, actor in scene.actors.items():
            actor.SetVisibility(name == terrain)
        scene.set_lod(False)
        still = frame_times(plotter)
        scene.set_lod(True)
        for name, lod_actor in scene.lod_actors.items():
            lod_actor.SetVisibility(name == terrain)
        moving = frame_times(plotter)
    finally:
        scene.set_lod(False)
        for name, visible in shown.items():
            scene.actors[name].SetVisibility(visible)
    return still, moving


def plotter_for(scene):
    import pyvista as pv

    plotter = pv.Plotter(off_screen=True, window_size=WINDOW)
    plotter.set_background("#f4f6f8", top="#c9d6e3")
    scene.add_to_plotter(plotter)
    scene.reset_camera(plotter)
    return plotter


def naive_scene(scene, frame, limit: int | None = None) -> tuple[float, float, int]:
    """Build time, median frame time and actor count with one actor per building (other layers merged)."""
    import pyvista as pv

    from twin.scene.meshes import extrude_polygons

    buildings = next(lm for lm in scene.layers.values() if lm.role == "buildings")
    frame = frame.iloc[:limit] if limit else frame
    plotter = pv.Plotter(off_screen=True, window_size=WINDOW)
    plotter.set_background("#f4f6f8", top="#c9d6e3")
    for name, lm in scene.layers.items():
        if lm.role != "buildings" and lm.mesh.n_cells:
            plotter.add_mesh(lm.mesh, scalars="RGBA", rgba=True, show_scalar_bar=False, reset_camera=False,
                             preference="point" if lm.on_points else "cell")
    t = time.perf_counter()
    base = np.nan_to_num(frame["base_m"].to_numpy(float))
    top = base + frame["height_m"].to_numpy(float)
    colour = buildings.base_rgba[0, :3] / 255.0
    for geom, b, h in zip(frame.geometry.values, base, top):
        mesh = extrude_polygons([geom], b, h, z_scale=scene.z_scale)
        plotter.add_mesh(mesh, color=colour, reset_camera=False)
    build = time.perf_counter() - t
    scene.reset_camera(plotter)
    ft = frame_times(plotter)
    plotter.close()
    return build, ft, len(frame)


def bench(label: str, city, naive_limit: int | None, n_buildings: int) -> None:
    from twin.scene.city_scene import CityScene

    t = time.perf_counter()
    scene = CityScene(city)
    scene.build()
    build = time.perf_counter() - t
    plotter = plotter_for(scene)
    cells = sum(m.n_cells for m in scene.meshes.values())
    merged = frame_times(plotter)
    scene.set_lod(True)
    moving = frame_times(plotter)
    terrain = terrain_frame_times(scene, plotter)
    plotter.close()
    nb, nf, count = naive_scene(scene, city.buildings.frame, naive_limit)
    if count < n_buildings:
        # Scale the per-building cost of the sample (build: linear; frame: per actor above the merged scene).
        per_actor_frame = max(nf - merged * count / n_buildings, 0.0) / count
        nb, nf = nb * n_buildings / count, merged + per_actor_frame * n_buildings
        note = f"extrapolated from {count:,} actors"
    else:
        note = f"{count:,} actors"
    print(f"{label:<22} {n_buildings:>9,} {cells:>11,} {build:>8.2f} {merged * 1000:>9.1f} {moving * 1000:>7.1f} "
          f"{nb:>10.1f} {nf * 1000:>11.1f} {nf / merged:>7.1f}x {nf / moving:>7.1f}x  {note}", flush=True)
    if terrain is not None:
        print(f"{'  terrain only':<22} {'':>9} {'':>11} {'':>8} {terrain[0] * 1000:>9.1f} {terrain[1] * 1000:>7.1f}",
              flush=True)


def save_views(cities: list[str], folder: Path) -> None:
    """The default oblique view of each sample city, as the app opens it, at the bench's window size."""
    from twin.city.city import load_city
    from twin.scene.city_scene import CityScene
    from twin.scene.export import screenshot

    for name in cities:
        scene = CityScene(load_city(ROOT / "gis_data" / name))
        scene.build()
        plotter = plotter_for(scene)
        print(screenshot(plotter, folder / f"scene_{name}.png"))
        plotter.close()


def open_times(cities: list[str]) -> None:
    """Seconds from File > Open to a window showing the city in both views, and
    the whole `app.py --screenshot` run (Python start and imports included)."""
    import os
    import subprocess
    import sys
    import tempfile

    from PySide6.QtWidgets import QApplication

    from twin.ui.main_window import MainWindow

    os.environ["TWIN_NO_DIALOGS"] = "1"
    app = QApplication.instance() or QApplication([])
    print(f"{'city':<10} {'open, no cache s':>17} {'open, cached s':>15} {'app.py start to PNG s':>22}")
    for name in cities:
        times = []
        with tempfile.TemporaryDirectory() as cache:
            os.environ["TWIN_CACHE_DIR"] = cache
            for _ in range(2):
                window = MainWindow()
                window.resize(*WINDOW)
                window.show()
                done = []
                window.ready.connect(lambda: done.append(time.perf_counter()))
                t = time.perf_counter()
                window.open_path(ROOT / "gis_data" / name)
                while not done:
                    app.processEvents()
                    time.sleep(0.002)
                times.append(done[0] - t)
                window.close()
            with tempfile.TemporaryDirectory() as out:
                t = time.perf_counter()
                subprocess.run([sys.executable, str(ROOT / "app.py"), str(ROOT / "gis_data" / name), "--screenshot",
                                str(Path(out) / "x.png")], check=True, capture_output=True,
                               env=dict(os.environ, TWIN_SKIP_BOOTSTRAP="1"))
                whole = time.perf_counter() - t
        print(f"{name:<10} {times[0]:17.2f} {times[1]:15.2f} {whole:22.2f}")


def main() -> None:
    import pyvista as pv

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cities", nargs="*", default=list(CITIES))
    parser.add_argument("--synthetic", type=int, default=100_000, help="buildings in the synthetic city (0: skip)")
    parser.add_argument("--shots", type=Path, default=None,
                        help="only save the default oblique view of each city as DIR/scene_<city>.png")
    parser.add_argument("--open", action="store_true", help="only time opening each city in the window")
    args = parser.parse_args()
    pv.global_theme.multi_samples = 0
    if args.shots is not None:
        save_views(args.cities, args.shots)
        return
    if args.open:
        open_times(args.cities)
        return
    print(f"window {WINDOW[0]}x{WINDOW[1]}, {FRAMES} frames per view; times: build s, median frame ms "
          "(frame: still, full meshes; lod: while moving); ratios: naive frame / frame, naive frame / lod")
    print(f"{'city':<22} {'buildings':>9} {'cells':>11} {'build_s':>8} {'frame_ms':>9} {'lod_ms':>7} "
          f"{'naive_b_s':>10} {'naive_fr_ms':>11} {'ratio':>8} {'lod_x':>8}")
    from twin.city.city import load_city

    for name in args.cities:
        city = load_city(ROOT / "gis_data" / name)
        bench(name, city, None, len(city.buildings))
    if args.synthetic:
        city = synthetic_city(args.synthetic)
        bench(f"synthetic {args.synthetic:,}", city, min(NAIVE_SAMPLE, args.synthetic), args.synthetic)


if __name__ == "__main__":
    main()
