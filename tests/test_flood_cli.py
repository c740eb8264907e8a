"""`twin flood simulate`: closed-form checks on flat boxes, a run on a Carlisle crop, clear errors."""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window

from twin.cli import flood_cmd
from twin.cli import main as cli_main

CRS = "EPSG:27700"
ORIGIN = (340000.0, 556000.0)
CELL_M = 5.0
# 200 x 200 cells (1 km x 1 km) of the Carlisle DEM over the Eden and the lower Caldew, no nodata.
CARLISLE_WINDOW = Window(740, 690, 200, 200)


@pytest.fixture(autouse=True)
def flood_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """`twin flood` on the parser, whether or not twin/cli/main.py registers it already."""
    original = cli_main.build_parser

    def build() -> argparse.ArgumentParser:
        parser = original()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "flood" not in commands.choices:
            flood_cmd.register(commands)
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """The grids here are tiny: one solver thread is fastest, and it does not stall when other work
    keeps the machine's cores busy (a parallel region waits for its slowest thread)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def _run(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = cli_main.main(["flood", "simulate", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _write_dem(path: Path, z: np.ndarray, *, crs: str | None = CRS) -> Affine:
    transform = Affine(CELL_M, 0, ORIGIN[0], 0, -CELL_M, ORIGIN[1])
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1, dtype="float32",
                       crs=crs, transform=transform, nodata=np.nan) as dst:
        dst.write(z.astype(np.float32), 1)
    return transform


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def _cell_centre(row: float, col: float) -> tuple[float, float]:
    return ORIGIN[0] + (col + 0.5) * CELL_M, ORIGIN[1] - (row + 0.5) * CELL_M


def _read_tif(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(1), src.profile


# ----------------------------------------------------------------------------- closed forms


def test_uniform_rain_on_flat_closed_box(capsys, tmp_path: Path) -> None:
    rows, cols = 10, 12
    transform = _write_dem(tmp_path / "dem.tif", np.full((rows, cols), 5.0))
    rain = _write_csv(tmp_path / "rain.csv", ["time_s", "rain_mm_per_h"], [[0, 36.0], [600, 0.0]])
    probes = _write_csv(tmp_path / "probes.csv", ["name", "x", "y"],
                        [["corner", *_cell_centre(0, 0)], ["middle", *_cell_centre(5, 6)]])
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "--dem", tmp_path / "dem.tif", "--duration", 900, "--rain", rain,
                             "--probes", probes, "--frame-every", 300, "--manning", 0.02, "--out", out)
    assert code == 0, err
    line = stdout.strip()
    assert "\n" not in line and line.startswith("flood: 900 s in ")
    assert "mass error" in line and "cell updates/s" in line

    rain_m = 36.0 / 1000 * 600 / 3600  # 6 mm
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["arrival_time.tif", "depth_300.tif", "depth_600.tif", "depth_900.tif", "mass_balance.json",
         "max_depth.tif", "max_speed.tif", "probes.csv"])
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []

    with rasterio.open(tmp_path / "dem.tif") as src:
        dem_crs = src.crs
    depth, profile = _read_tif(out / "depth_900.tif")
    assert profile["dtype"] == "float32" and profile["compress"] == "deflate"
    assert profile["crs"] == dem_crs and profile["transform"] == transform
    assert depth.shape == (rows, cols)
    assert abs(depth.astype(np.float64).mean() - rain_m) <= 1e-6 * rain_m
    half, _ = _read_tif(out / "depth_300.tif")
    assert abs(half.astype(np.float64).mean() - rain_m / 2) <= 1e-6 * rain_m
    arrival, _ = _read_tif(out / "arrival_time.tif")
    assert np.isnan(arrival).all()  # 6 mm never reaches the 0.1 m arrival depth

    record = json.loads((out / "mass_balance.json").read_text())
    balance = record["balance"]
    assert balance["relative_error"] < 1e-6
    area = rows * cols * CELL_M**2
    assert balance["source_in_m3"] == pytest.approx(rain_m * area, rel=1e-9)
    assert record["volumes"]["rain_m3"] == balance["source_in_m3"]
    assert record["volumes"]["in_m3"] == pytest.approx(rain_m * area, rel=1e-9)
    assert balance["edge_outflow_m3"] == 0.0
    assert record["steps"] > 0 and record["cell_updates"] == record["steps"] * rows * cols
    assert record["seed"] is None and record["versions"]["numpy"]
    assert record["inputs"]["rain"]["sha256"] and len(record["inputs"]["dem"]["sha256"]) == 64
    assert record["command_line"].startswith("twin flood simulate --dem ")

    header, values = _read_csv(out / "probes.csv")
    assert header == ["time_s", "corner_level_m", "corner_depth_m", "middle_level_m", "middle_depth_m"]
    assert values[:, 0].tolist() == [0, 300, 600, 900]
    expected = np.array([0, rain_m / 2, rain_m, rain_m])
    np.testing.assert_allclose(values[:, 2], expected, atol=1e-6)
    np.testing.assert_allclose(values[:, 4], expected, atol=1e-6)
    np.testing.assert_allclose(values[:, 1], 5.0 + expected, atol=1e-6)


def test_point_discharge_raises_level_by_volume_over_area(capsys, tmp_path: Path) -> None:
    rows = cols = 20
    _write_dem(tmp_path / "dem.tif", np.zeros((rows, cols)))
    q_m3_per_s, level0_m = 0.5, 0.5
    _write_csv(tmp_path / "q.csv", ["time_s", "value"], [[0, q_m3_per_s], [3600, q_m3_per_s]])
    # The inflow point is given in lon/lat: features in any CRS are reprojected to the DEM's.
    lon, lat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(*_cell_centre(9, 9))
    (tmp_path / "inflows.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "pipe", "kind": "discharge", "hydrograph": "q.csv"},
         "geometry": {"type": "Point", "coordinates": [lon, lat]}}]}))
    probes = _write_csv(tmp_path / "probes.csv", ["name", "x", "y"],
                        [["far", *_cell_centre(19, 19)], ["near", *_cell_centre(9, 10)]])
    out = tmp_path / "out"
    code, _, err = _run(capsys, "--dem", tmp_path / "dem.tif", "--duration", 1800, "--inflows",
                        tmp_path / "inflows.geojson", "--initial-level", level0_m, "--probes", probes,
                        "--report-every", 300, "--frame-every", 1800, "--out", out)
    assert code == 0, err
    header, values = _read_csv(out / "probes.csv")
    assert header[1:3] == ["far_level_m", "far_depth_m"]
    t = values[:, 0]
    assert t.tolist() == [0, 300, 600, 900, 1200, 1500, 1800]
    rise = q_m3_per_s * t / (rows * cols * CELL_M**2)
    # A point source keeps a small seiche going in a pool this smooth: a few mm on a 90 mm rise.
    np.testing.assert_allclose(values[:, 1] - level0_m, rise, atol=5e-3)
    np.testing.assert_allclose(values[:, 3] - level0_m, rise, atol=5e-3)
    depth, _ = _read_tif(out / "depth_1800.tif")
    assert depth.astype(np.float64).mean() - level0_m == pytest.approx(rise[-1], rel=1e-6)
    record = json.loads((out / "mass_balance.json").read_text())
    assert record["balance"]["inflow_m3"] == pytest.approx(q_m3_per_s * 1800, rel=1e-12)
    assert record["balance"]["relative_error"] < 1e-6


# ----------------------------------------------------------------------------- Carlisle


def _crop(src_path: Path, dst_path: Path, window: Window) -> Affine:
    with rasterio.open(src_path) as src:
        profile = src.profile
        data = src.read(1, window=window)
        transform = src.window_transform(window)
    profile.update(width=window.width, height=window.height, transform=transform, tiled=False)
    profile.pop("blockxsize", None)
    profile.pop("blockysize", None)
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data, 1)
    return transform


def _wettest_hour(rain_csv: Path, zones: np.ndarray, dst: Path) -> float:
    """The hour of the Carlisle storm with the most rain on the crop, shifted to start at 0 s; its depth (mm)."""
    header, values = _read_csv(rain_csv)
    step_s = values[1, 0] - values[0, 0]
    per_hour = int(round(3600 / step_s))
    ids, counts = np.unique(zones, return_counts=True)
    columns = [header.index(f"zone_{z}") for z in ids]
    crop_mm_per_h = values[:, columns] @ (counts / counts.sum())
    sums = np.convolve(crop_mm_per_h[:-1], np.ones(per_hour), mode="valid")
    start = int(np.argmax(sums))
    rows = values[start:start + per_hour].copy()
    rows[:, 0] -= rows[0, 0]
    closing = np.zeros((1, values.shape[1]))
    closing[0, 0] = 3600.0
    _write_csv(dst, header, [[f"{v:g}" for v in r] for r in np.vstack([rows, closing])])
    return float(sums[start] * step_s / 3600)


def test_carlisle_crop_wettest_hour(capsys, tmp_path: Path, gis_data: Path) -> None:
    carlisle = gis_data / "carlisle"
    dem_transform = _crop(carlisle / "dem.tif", tmp_path / "dem.tif", CARLISLE_WINDOW)
    _crop(carlisle / "rain_zones.tif", tmp_path / "zones.tif", CARLISLE_WINDOW)
    zones, _ = _read_tif(tmp_path / "zones.tif")
    rain_mm = _wettest_hour(carlisle / "rain.csv", zones, tmp_path / "rain.csv")
    assert rain_mm > 5.0
    table = _write_csv(tmp_path / "landcover_table.csv", ["value", "manning_n", "land_class"],
                       [[1, 0.035, 11], [2, 0.05, 20]])
    x0, y0 = dem_transform @ (100, 100)
    probes = _write_csv(tmp_path / "probes.csv", ["name", "x", "y"], [["centre", x0, y0]])
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys, "--dem", tmp_path / "dem.tif", "--duration", 3600, "--rain", tmp_path / "rain.csv",
        "--rain-zones", tmp_path / "zones.tif", "--landcover", carlisle / "landcover.tif",
        "--landcover-table", table, "--infiltration", "green_ampt", "--buildings", carlisle / "buildings_derived.gpkg",
        "--probes", probes, "--coarsen", 2, "--frame-every", 1800, "--report-every", 600, "--out", out)
    assert code == 0, err
    print(stdout)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["arrival_time.tif", "depth_1800.tif", "depth_3600.tif", "mass_balance.json", "max_depth.tif",
         "max_speed.tif", "probes.csv"])
    max_depth, profile = _read_tif(out / "max_depth.tif")
    with rasterio.open(tmp_path / "dem.tif") as src:
        assert profile["crs"] == src.crs
    assert profile["transform"] == dem_transform @ Affine.scale(2)
    assert max_depth.shape == (100, 100)
    walls = np.isnan(max_depth)
    assert 0.02 < walls.mean() < 0.5  # buildings are walls
    assert 0.0 < np.nanmax(max_depth) < 10.0
    speed, _ = _read_tif(out / "max_speed.tif")
    assert 0.0 < np.nanmax(speed) < 10.0

    record = json.loads((out / "mass_balance.json").read_text())
    b = record["balance"]
    assert b["relative_error"] < 1e-6
    assert b["edge_outflow_m3"] == 0.0 and b["inflow_m3"] == 0.0
    volumes = record["volumes"]
    open_area = record["grid"]["open_cells"] * 100.0
    assert volumes["rain_m3"] == pytest.approx(rain_mm / 1000 * open_area, rel=0.05)
    assert 0.0 < volumes["infiltration_m3"] < volumes["rain_m3"]
    storage_change = b["storage_m3"] - b["initial_storage_m3"]
    assert storage_change == pytest.approx(volumes["in_m3"] - volumes["out_m3"], rel=1e-9)
    assert record["grid"]["coarsen"] == 2 and record["steps"] > 0
    _, values = _read_csv(out / "probes.csv")
    assert values[:, 0].tolist() == [0, 600, 1200, 1800, 2400, 3000, 3600]


# ----------------------------------------------------------------------------- bad inputs


@pytest.fixture()
def box(tmp_path: Path) -> Path:
    """A valid 8 x 8 flat DEM with a uniform rain file, inflow GeoJSON and probes beside it."""
    _write_dem(tmp_path / "dem.tif", np.zeros((8, 8)))
    _write_csv(tmp_path / "rain.csv", ["time_s", "rain_mm_per_h"], [[0, 10.0], [60, 0.0]])
    _write_csv(tmp_path / "q.csv", ["time_s", "value"], [[0, 1.0], [60, 2.0], [120, 0.0]])
    _write_csv(tmp_path / "probes.csv", ["name", "x", "y"], [["p", *_cell_centre(3, 3)]])
    _write_inflows(tmp_path, {"name": "pipe", "kind": "discharge", "hydrograph": "q.csv"})
    return tmp_path


def _write_inflows(folder: Path, *properties: dict) -> Path:
    x, y = _cell_centre(4, 4)
    features = [{"type": "Feature", "properties": p, "geometry": {"type": "Point", "coordinates": [x, y]}}
                for p in properties]
    path = folder / "inflows.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features,
                                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::27700"}}}))
    return path


def _assert_refused(code: int, err: str, out: Path, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("twin: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f"{out.name}.tmp-")] == []


def _base(box: Path) -> list[object]:
    return ["--dem", box / "dem.tif", "--duration", 60, "--out", box / "out"]


def test_valid_box_runs(capsys, box: Path) -> None:
    code, _, err = _run(capsys, *_base(box), "--rain", box / "rain.csv", "--inflows", box / "inflows.geojson",
                        "--probes", box / "probes.csv")
    assert code == 0, err


def test_source_step_is_recorded_and_checked(capsys, box: Path) -> None:
    from models.flood.simulate import DEFAULT_SOURCE_STEP_S
    from twin.cli import flood_cmd

    assert flood_cmd.DEFAULT_SOURCE_STEP_S == DEFAULT_SOURCE_STEP_S  # the help's number is the solver's
    code, _, err = _run(capsys, *_base(box), "--rain", box / "rain.csv", "--source-step", 7.5)
    assert code == 0, err
    record = json.loads((box / "out" / "mass_balance.json").read_text())
    assert record["options"]["source_step_s"] == 7.5 and "--source-step 7.5" in record["command_line"]
    assert record["volumes"]["rain_m3"] == pytest.approx(10.0 / 3.6e6 * 60.0 * 64 * CELL_M**2, rel=1e-12)
    code, _, err = _run(capsys, *_base(box), "--source-step", -1, "--out", box / "again")
    _assert_refused(code, err, box / "again", "--source-step", "-1")


def test_held_level_fills_a_dry_box(capsys, box: Path) -> None:
    _write_csv(box / "level.csv", ["time_s", "value"], [[0, 0.3], [600, 0.3]])
    path = _write_inflows(box, {"name": "river", "kind": "level", "hydrograph": "level.csv"})
    code, _, err = _run(capsys, *_base(box), "--inflows", path, "--duration", 600, "--probes", box / "probes.csv")
    assert code == 0, err
    b = json.loads((box / "out" / "mass_balance.json").read_text())["balance"]
    assert b["level_in_m3"] > 0 and b["relative_error"] < 1e-6
    assert b["storage_m3"] - b["initial_storage_m3"] == pytest.approx(b["level_in_m3"] - b["level_out_m3"], rel=1e-9)
    _, values = _read_csv(box / "out" / "probes.csv")
    assert values[-1, 2] > 0.05  # water from the held cell reached the probe


def test_initial_depth_raster_and_open_edges(capsys, box: Path) -> None:
    slope = np.tile(0.02 * np.arange(8, dtype=np.float64), (8, 1))  # falls towards the west edge
    _write_dem(box / "dem.tif", slope)
    _write_dem(box / "depth0.tif", np.full((8, 8), 0.2))
    code, _, err = _run(capsys, *_base(box), "--initial-depth", box / "depth0.tif", "--boundary", "open",
                        "--duration", 300)
    assert code == 0, err
    record = json.loads((box / "out" / "mass_balance.json").read_text())
    b = record["balance"]
    assert b["initial_storage_m3"] == pytest.approx(0.2 * 64 * CELL_M**2, rel=1e-6)
    assert b["edge_outflow_m3"] > 0 and b["storage_m3"] < b["initial_storage_m3"]
    assert b["relative_error"] < 1e-6
    arrival, _ = _read_tif(box / "out" / "arrival_time.tif")
    assert (arrival == 0).all()  # 0.2 m deep from the start


def test_dem_without_crs(capsys, box: Path) -> None:
    _write_dem(box / "dem.tif", np.zeros((8, 8)), crs=None)
    code, _, err = _run(capsys, *_base(box))
    _assert_refused(code, err, box / "out", str(box / "dem.tif"), "crs", "coordinate reference system")


def test_probe_outside_grid(capsys, box: Path) -> None:
    _write_csv(box / "probes.csv", ["name", "x", "y"], [["in", *_cell_centre(1, 1)], ["far", 0.0, 0.0]])
    code, _, err = _run(capsys, *_base(box), "--probes", box / "probes.csv")
    _assert_refused(code, err, box / "out", str(box / "probes.csv"), "probe 'far', columns x,y", "outside the DEM")


def test_hydrograph_times_out_of_order(capsys, box: Path) -> None:
    _write_csv(box / "q.csv", ["time_s", "value"], [[0, 1.0], [600, 2.0], [300, 1.0]])
    code, _, err = _run(capsys, *_base(box), "--inflows", box / "inflows.geojson")
    _assert_refused(code, err, box / "out", str(box / "q.csv"), "line 4, column time_s", "not after 600 s")


def test_negative_rain(capsys, box: Path) -> None:
    _write_csv(box / "rain.csv", ["time_s", "rain_mm_per_h"], [[0, 10.0], [30, -2.0], [60, 0.0]])
    code, _, err = _run(capsys, *_base(box), "--rain", box / "rain.csv")
    _assert_refused(code, err, box / "out", str(box / "rain.csv"), "line 3, column rain_mm_per_h", "negative")


@pytest.mark.parametrize(("properties", "needles"), [
    ({"name": "pipe", "hydrograph": "q.csv"}, ["feature 1 ('pipe'), property kind", "missing"]),
    ({"name": "pipe", "kind": "discharge"}, ["feature 1 ('pipe'), property hydrograph", "missing"]),
    ({"name": "pipe", "kind": "flow", "hydrograph": "q.csv"}, ["property kind", "'flow' is not a kind"]),
    ({"name": "pipe", "kind": "level", "hydrograph": "nowhere.csv"}, ["property hydrograph", "nowhere.csv"]),
])
def test_bad_inflow_feature(capsys, box: Path, properties: dict, needles: list[str]) -> None:
    path = _write_inflows(box, properties)
    code, _, err = _run(capsys, *_base(box), "--inflows", path)
    _assert_refused(code, err, box / "out", str(path), *needles)


@pytest.mark.parametrize(("extra", "needles"), [
    (["--manning", "0.03", "--landcover", "dem.tif", "--landcover-table", "table.csv"], ["--manning, --landcover"]),
    (["--initial-level", "1", "--initial-depth", "dem.tif"], ["--initial-level, --initial-depth"]),
    (["--landcover", "dem.tif"], ["--landcover, --landcover-table", "needs --landcover-table"]),
    (["--rain-zones", "dem.tif"], ["--rain-zones", "need a rain file"]),
    (["--infiltration", "horton"], ["--infiltration, --landcover"]),
])
def test_conflicting_options(capsys, box: Path, extra: list[str], needles: list[str]) -> None:
    _write_csv(box / "table.csv", ["value", "manning_n"], [[0, 0.03]])
    extra = [str(box / e) if e.endswith((".tif", ".csv")) else e for e in extra]
    code, _, err = _run(capsys, *_base(box), *extra)
    _assert_refused(code, err, box / "out", "twin flood simulate", *needles)


def test_missing_file(capsys, box: Path) -> None:
    code, _, err = _run(capsys, *_base(box), "--buildings", box / "nowhere.gpkg")
    _assert_refused(code, err, box / "out", str(box / "nowhere.gpkg"), "--buildings", "file not found")


def test_every_problem_reported_at_once(capsys, box: Path) -> None:
    _write_csv(box / "rain.csv", ["time_s", "rain_mm_per_h"], [[0, -1.0], [60, 0.0]])
    _write_csv(box / "q.csv", ["time_s", "value"], [[60, 1.0], [0, 1.0]])
    code, _, err = _run(capsys, *_base(box), "--rain", box / "rain.csv", "--inflows", box / "inflows.geojson",
                        "--probes", box / "missing.csv", "--manning", "-1", "--frame-every", "0")
    _assert_refused(code, err, box / "out", "5 problems", str(box / "rain.csv"), str(box / "q.csv"),
                    str(box / "missing.csv"), "--manning", "--frame-every")


def test_landcover_value_without_row(capsys, box: Path) -> None:
    cover = box / "cover.tif"
    with rasterio.open(cover, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs=CRS,
                       transform=Affine(CELL_M, 0, ORIGIN[0], 0, -CELL_M, ORIGIN[1]), nodata=0) as dst:
        dst.write(np.where(np.arange(64).reshape(8, 8) < 32, 1, 3).astype(np.uint8), 1)
    table = _write_csv(box / "table.csv", ["value", "manning_n"], [[1, 0.03], [2, "x"]])
    code, _, err = _run(capsys, *_base(box), "--landcover", cover, "--landcover-table", table)
    _assert_refused(code, err, box / "out", str(table), "line 3, column manning_n", "value(s) 3")


def test_existing_results_are_not_overwritten(capsys, box: Path) -> None:
    (box / "out").mkdir()
    (box / "out" / "keep.txt").write_text("earlier run")
    code, _, err = _run(capsys, *_base(box))
    assert code == 2 and "--out" in err and "not an empty folder" in err
    assert [p.name for p in (box / "out").iterdir()] == ["keep.txt"]


def test_frame_names_sort_by_time(tmp_path: Path) -> None:
    from models.flood.simulate import _frame_label, _schedule

    assert _frame_label(300, 3600) == "0300" and _frame_label(3600, 3600) == "3600"
    schedule = _schedule(1000.0, 300.0, 200.0, np.array([0.0, 250.0, 300.0, 1200.0]))
    assert [t for t, _, _ in schedule] == [200, 250, 300, 400, 600, 800, 900, 1000]
    assert [t for t, frame, _ in schedule if frame] == [300, 600, 900]
    assert [t for t, _, report in schedule if not report] == [250]
    assert math.isclose(schedule[-1][0], 1000.0)


# ----------------------------------------------------------------------------- design storms


def test_design_storm_on_a_flat_closed_box(capsys, tmp_path: Path) -> None:
    """A 50-year, 2-hour Chicago storm from Beijing's formula: the box holds the formula's 2-hour depth, and
    the wettest minute is the one after the peak at 0.4 of the storm (rain falls off more slowly after it)."""
    _write_dem(tmp_path / "dem.tif", np.full((6, 7), 3.0))
    probes = _write_csv(tmp_path / "probes.csv", ["name", "x", "y"], [["middle", *_cell_centre(3, 3)]])
    out = tmp_path / "out"
    code, _, err = _run(capsys, "--dem", tmp_path / "dem.tif", "--duration", 7200, "--storm-formula", "beijing",
                        "--design-storm", 50, "--probes", probes, "--report-every", 60, "--out", out)
    assert code == 0, err
    q_l_s_ha = 2001.0 * (1.0 + 0.811 * math.log10(50.0)) / (120.0 + 8.0) ** 0.711  # q = A (1 + C lg P) / (t + b)^n
    depth_m = q_l_s_ha * 0.36 * 2.0 / 1000.0  # 1 L/(s ha) = 0.36 mm/h, for 2 h
    record = json.loads((out / "mass_balance.json").read_text())
    area = 6 * 7 * CELL_M**2
    assert record["volumes"]["rain_m3"] == pytest.approx(depth_m * area, rel=1e-9)
    assert record["balance"]["storage_m3"] == pytest.approx(depth_m * area, rel=1e-9)
    assert record["design_storm"]["formula"] == "Beijing" and record["design_storm"]["return_period_years"] == 50
    assert record["design_storm"]["total_mm"] == pytest.approx(depth_m * 1000.0, rel=1e-12)
    assert "--storm-formula beijing --design-storm 50.0 --storm-duration 7200.0" in record["command_line"]
    assert "--drain" not in record["command_line"] and record["drainage"] is None
    _, values = _read_csv(out / "probes.csv")
    assert values[-1, 2] == pytest.approx(depth_m, abs=1e-6)  # probes.csv holds micrometres
    per_minute = np.diff(values[:, 2])
    assert values[1 + int(np.argmax(per_minute)), 0] == 2940.0  # the minute 2880-2940 s


def test_design_storm_given_as_coefficients_matches_the_named_formula(capsys, box: Path) -> None:
    common = ["--duration", 600, "--design-storm", 10, "--storm-duration", 600, "--peak-ratio", 0.5]
    totals = []
    for i, formula in enumerate(("Shanghai", "1600,0.846,7,0.656")):
        code, _, err = _run(capsys, "--dem", box / "dem.tif", "--storm-formula", formula, *common,
                            "--out", box / f"out{i}")
        assert code == 0, err
        totals.append(json.loads((box / f"out{i}" / "mass_balance.json").read_text())["volumes"]["rain_m3"])
    assert totals[0] == totals[1] > 0


def test_design_storm_and_drain_problems_reported_at_once(capsys, box: Path) -> None:
    code, _, err = _run(capsys, *_base(box), "--rain", box / "rain.csv", "--storm-formula", "atlantis",
                        "--design-storm", 0, "--peak-ratio", 1.5, "--storm-step", 0, "--drainage", 5,
                        "--runoff-coefficient", 1.5)
    _assert_refused(code, err, box / "out", "6 problems", "--rain, --design-storm", "'atlantis' is neither",
                    "Beijing", "--design-storm: 0 is not a return period", "--peak-ratio", "--storm-step",
                    "--runoff-coefficient")
    code, _, err = _run(capsys, *_base(box), "--design-storm", 20, "--drainage", 3)
    _assert_refused(code, err, box / "out", "2 problems", "--design-storm: needs the storm intensity formula",
                    "--drainage: needs the storm intensity formula")
    code, _, err = _run(capsys, *_base(box), "--storm-formula", "1,2,3")
    _assert_refused(code, err, box / "out", "four numbers A,C,b,n", "the formula alone does nothing")


def test_drains_take_rain_up_to_their_design_capacity(capsys, tmp_path: Path) -> None:
    """100 mm/h for 10 minutes on a flat closed box with drains sized for Beijing's 3-year, 10-minute rain
    (capacity psi q, psi 0.6): water stands at (100 - capacity) mm/h while it rains, then drains away."""
    _write_dem(tmp_path / "dem.tif", np.full((5, 6), 2.0))
    rain = _write_csv(tmp_path / "rain.csv", ["time_s", "rain_mm_per_h"], [[0, 100.0], [600, 0.0]])
    probes = _write_csv(tmp_path / "probes.csv", ["name", "x", "y"], [["middle", *_cell_centre(2, 3)]])
    out = tmp_path / "out"
    code, _, err = _run(capsys, "--dem", tmp_path / "dem.tif", "--duration", 1200, "--rain", rain, "--probes", probes,
                        "--report-every", 300, "--storm-formula", "beijing", "--drainage", 3, "--out", out)
    assert code == 0, err
    capacity_mm_h = 0.6 * 2001.0 * (1.0 + 0.811 * math.log10(3.0)) / (10.0 + 8.0) ** 0.711 * 0.36
    assert 70.0 < capacity_mm_h < 80.0
    _, values = _read_csv(out / "probes.csv")
    standing_m = (100.0 - capacity_mm_h) / 1000.0 / 3600.0
    np.testing.assert_allclose(values[:, 2], [0.0, 300 * standing_m, 600 * standing_m, 0.0, 0.0], atol=1e-6)
    record = json.loads((out / "mass_balance.json").read_text())
    area = 5 * 6 * CELL_M**2
    volumes = record["volumes"]
    assert volumes["rain_m3"] == pytest.approx(0.1 / 6.0 * area, rel=1e-12)
    assert volumes["drained_m3"] == pytest.approx(volumes["rain_m3"], rel=1e-9) and volumes["infiltration_m3"] == 0
    assert record["balance"]["relative_error"] < 1e-9
    assert record["drainage"]["capacity_mm_per_h"] == pytest.approx(capacity_mm_h, rel=1e-12)
    assert "--drainage 3.0 --drain-duration 10.0 --runoff-coefficient 0.6" in record["command_line"]


def test_help_numbers_are_the_solvers() -> None:
    from models.flood import simulate
    from models.flood.sources import STORM_FORMULAS

    assert flood_cmd.DEFAULT_STORM_DURATION_S == simulate.DEFAULT_STORM_DURATION_S
    assert flood_cmd.DEFAULT_PEAK_RATIO == simulate.DEFAULT_PEAK_RATIO
    assert flood_cmd.DEFAULT_STORM_STEP_S == simulate.DEFAULT_STORM_STEP_S
    assert flood_cmd.DEFAULT_DRAIN_DURATION_MIN == simulate.DEFAULT_DRAIN_DURATION_MIN
    assert flood_cmd.DEFAULT_RUNOFF_COEFFICIENT == simulate.DEFAULT_RUNOFF_COEFFICIENT
    assert [f.name for f in STORM_FORMULAS.values()] == list(flood_cmd.STORM_FORMULA_NAMES)


def test_drains_serve_built_up_land_only(capsys, box: Path) -> None:
    """Half the box is water and woods (land class 11), half built-up (20): only the built-up half drains,
    so the drains take at most their capacity on half the area, and the water left is the rest of the rain."""
    cover = box / "cover.tif"
    with rasterio.open(cover, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs=CRS,
                       transform=Affine(CELL_M, 0, ORIGIN[0], 0, -CELL_M, ORIGIN[1]), nodata=0) as dst:
        dst.write(np.where(np.arange(64).reshape(8, 8) < 32, 1, 2).astype(np.uint8), 1)
    table = _write_csv(box / "table.csv", ["value", "manning_n", "land_class"], [[1, 0.035, 11], [2, 0.02, 20]])
    rain = _write_csv(box / "heavy.csv", ["time_s", "rain_mm_per_h"], [[0, 200.0], [600, 0.0]])
    code, _, err = _run(capsys, "--dem", box / "dem.tif", "--duration", 600, "--rain", rain, "--landcover", cover,
                        "--landcover-table", table, "--storm-formula", "beijing", "--drainage", 3,
                        "--out", box / "out")
    assert code == 0, err
    record = json.loads((box / "out" / "mass_balance.json").read_text())
    capacity_m_s = record["drainage"]["capacity_mm_per_h"] / 3.6e6
    most_m3 = capacity_m_s * 600.0 * 32 * CELL_M**2
    drained = record["volumes"]["drained_m3"]
    assert 0.95 * most_m3 < drained <= most_m3 * (1 + 1e-9)
    assert record["balance"]["storage_m3"] == pytest.approx(record["volumes"]["rain_m3"] - drained, rel=1e-9)
