"""Speed of the flood kernel, and the same rain-on-DEM case in landlab and ANUGA.

1. Kernel: cell updates per second of ``models.flood.hydraulics`` on a
   ``--kernel-size`` square crop of the Carlisle 5 m DEM, uniform rain, open
   edges, theta 0.8, after the domain has wetted up (median of ``--repeat``).
   Then ``twin flood simulate`` with every source on, on the whole 5 m grid
   (1855 x 1813): rain per zone, Manning's n per land cover, Green-Ampt
   infiltration per land class, storm drains on built-up land (the sample has
   no drain data: sized as a Chinese city would, Beijing's formula, 3-year
   rain), buildings as walls, the three rivers' inflow
   hydrographs, open edges, for ``--full-duration`` seconds of the storm; and
   again for ``--heavy-duration`` seconds of its wettest rain (the rain series
   from ``--heavy-from`` on, moved to start at 0; soils start dry, so Green-Ampt
   ponds within minutes and solves on most cells at each source step).  Rain
   and infiltration are applied every ``--source-step`` seconds (the
   command's default); the wettest window runs again with them applied at
   every hydraulic step (``--source-step 0``), for comparison.  A city's
   outline leaves part of the grid outside its domain: the rate of the
   domain's own cells is printed too.  Before each of these timings a plain
   two-pass kernel of the scheme (``bench/plain_inertial.py``: float32,
   uniform rain, nothing else) is timed on the kernel's crop for 3 s, and
   each rate is printed also as a multiple of the plain kernel's in that
   turn: the machine's speed drifts by a third from hour to hour, the ratio
   much less.
2. Against landlab's ``OverlandFlow`` (the same local inertial scheme of
   de Almeida et al. 2012, compiled with Cython) on a ``--size`` crop with
   closed edges, uniform rain, the same Manning n, alpha 0.5, theta 0.8,
   g 9.81, the same 10 s cap on the step, for ``--duration`` seconds.
3. Against ANUGA (finite volumes on triangles: each DEM cell cut into four,
   bed constant per cell, Manning friction, rain by ``Rate_operator``,
   reflective edges) on a smaller ``--anuga-size`` crop, with ours and
   landlab on the same crop.  ANUGA's step is set by its own CFL condition,
   so its wall time is compared both for the whole run and per update.

Ratios come from timings taken in this run on the same machine, the backends
taking turns; the machine may be busy, so each timing is the median of
``--repeat`` turns, and a turn times a backend over at least 3 s (the mean of
back-to-back runs where one run is shorter).  Maximum depth maps are compared
on the DEM cells: the share of cells whose wet/dry state (max depth above
``--wet-m``) agrees, the same share among cells wet in either run, and the
mean absolute difference.

    .venv/bin/python bench/flood.py [--size 200] [--duration 1800] [--anuga-size 40]
        [--anuga-duration 1800] [--kernel-size 1000] [--kernel-steps 200] [--full-duration 300] [--heavy-duration 1800]
        [--source-step 2] [--repeat 3]

landlab and ANUGA come with the ``bench`` extra (``pip install -e '.[bench]'``);
a backend that cannot be imported is reported with the reason and skipped.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEM = ROOT / "gis_data" / "carlisle" / "dem.tif"
G = 9.81
MAX_DT_S = 10.0
WINDOW_S = 3.0  # each backend's turn is timed over at least this long (see timed_turn)

import numpy as np  # noqa: E402

from bench.plain_inertial import Yardstick  # noqa: E402


@dataclass(frozen=True)
class RainCase:
    """A rain-on-DEM run: bed (m, no NaN), cell size (m), Manning n, rain (m/s), duration (s)."""

    z_m: np.ndarray
    dx_m: float
    manning_n: float
    rain_m_s: float
    duration_s: float

    @property
    def cells(self) -> int:
        return int(self.z_m.size)

    @property
    def rain_m3(self) -> float:
        return self.rain_m_s * self.duration_s * self.cells * self.dx_m**2


@dataclass(frozen=True)
class Run:
    """One backend's run: wall time of the stepping (s), steps, updates per step, max depth per DEM cell (m)."""

    name: str
    wall_s: float
    steps: int
    updates_per_step: int
    max_depth: np.ndarray
    volume_error: float
    """(stored - rain) / rain at the end; closed edges, so it should be ~0."""

    @property
    def updates_per_s(self) -> float:
        return self.steps * self.updates_per_step / self.wall_s


def load_crop(size: int) -> tuple[np.ndarray, float]:
    """A ``size`` x ``size`` crop of the Carlisle DEM around its centre (bed in m, cell size in m)."""
    from twin.geo.raster import read_grid

    grid = read_grid(DEM, name="dem", units="m")
    rows, cols = grid.shape
    if size > min(rows, cols):
        raise SystemExit(f"crop of {size} cells is larger than the DEM ({rows} x {cols})")
    r0, c0 = (rows - size) // 2, (cols - size) // 2
    dx, dy = grid.cell_size
    if dx != dy:
        raise SystemExit(f"the comparison needs square cells, the DEM has {dx} x {dy} m")
    return np.asarray(grid.values[r0:r0 + size, c0:c0 + size], dtype=np.float64), float(dx)


def rain_case(size: int, manning_n: float, rain_mm_h: float, duration_s: float) -> RainCase:
    """The comparison case on a centre crop; the crop must lie inside the DEM (no NaN)."""
    z, dx = load_crop(size)
    if not np.all(np.isfinite(z)):
        raise SystemExit(f"the {size} x {size} centre crop has cells outside the DEM; take a smaller one")
    return RainCase(z, dx, manning_n, rain_mm_h / 3.6e6, duration_s)


def _median_run(runs: list[Run]) -> Run:
    """The run with the median wall time (all runs compute the same thing)."""
    return sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]


def timed_turn(fn: Callable[[RainCase], Run], case: RainCase, window_s: float) -> Run:
    """One backend's turn: runs of ``case`` back to back until ``window_s`` of them; wall time is their mean.

    A run of a fraction of a second is a snapshot of a shared machine, while
    a run of a minute averages over whatever else the machine does; timing
    every backend over a window of at least ``window_s`` puts them on the
    same footing (every run computes the same thing).
    """
    walls: list[float] = []
    while True:
        run = fn(case)
        walls.append(run.wall_s)
        if sum(walls) >= window_s:
            return replace(run, wall_s=sum(walls) / len(walls))


def interleaved(fns: list[Callable[[RainCase], Run]], case: RainCase, times: int,
                window_s: float = WINDOW_S) -> list[Run]:
    """Median of ``times`` turns of each backend on one case, the backends taking turns.

    Taking turns (A, B, A, B, ...) exposes every backend alike to a machine
    whose speed drifts while the benchmark runs; each turn is timed over at
    least ``window_s`` (:func:`timed_turn`).  A short untimed run of each
    first (the first 20 s of the case) compiles our kernels when their cache
    is cold, and lets each backend load its libraries.
    """
    for fn in fns:
        fn(replace(case, duration_s=min(case.duration_s, 20.0)))
    runs: list[list[Run]] = [[] for _ in fns]
    for _ in range(times):
        for fn, done in zip(fns, runs):
            done.append(timed_turn(fn, case, window_s))
    return [_median_run(done) for done in runs]


# ---- the three backends -------------------------------------------------------------


def run_ours(case: RainCase) -> Run:
    """Our kernel: closed edges, theta 0.8, alpha 0.5, the rain as a constant uniform source (its steps run
    in compiled loops: ``quiet_steps``)."""
    from models.flood.hydraulics import FloodGrid, Simulation

    grid = FloodGrid(case.z_m, case.dx_m, manning_n=case.manning_n)
    sim = Simulation(grid, boundary="closed", source_rate=case.rain_m_s, alpha=0.5, theta=0.8,
                     max_dt_s=MAX_DT_S)
    start = time.perf_counter()
    sim.run_until(case.duration_s)
    wall = time.perf_counter() - start
    error = (sim.storage_m3() - case.rain_m3) / case.rain_m3
    return Run("ours", wall, sim.steps, case.cells, np.asarray(sim.max_depth, dtype=np.float64), error)


def run_landlab(case: RainCase) -> Run:
    """landlab ``OverlandFlow`` with our settings in place of its defaults.

    Its defaults differ: alpha 0.7 (ours 0.5), g 9.80665, no cap on the step
    (its first step on a film of ``h_init`` would be minutes long), and
    ``steep_slopes`` (a Froude and Courant clamp on discharge, which ours has
    not) off.  ``h_init`` (1e-5 m, added to every node at the start and the
    least flow depth of its links) stays at its default.  Rain is in m/s.  The
    crop gets a ring of closed nodes, so its core nodes are the DEM cells.
    """
    from landlab import RasterModelGrid
    from landlab.components import OverlandFlow

    rows, cols = case.z_m.shape
    grid = RasterModelGrid((rows + 2, cols + 2), xy_spacing=case.dx_m)
    z = grid.add_zeros("topographic__elevation", at="node")
    z[:] = np.pad(case.z_m, 1, mode="edge")[::-1].ravel()  # landlab's row 0 is the south edge
    h = grid.add_zeros("surface_water__depth", at="node")
    grid.set_closed_boundaries_at_grid_edges(True, True, True, True)
    flow = OverlandFlow(grid, alpha=0.5, mannings_n=case.manning_n, g=G, theta=0.8,
                        rainfall_intensity=case.rain_m_s, steep_slopes=False)
    core = grid.core_nodes
    h_max = h[core].copy()
    stored0 = float(h[core].sum())
    t = 0.0
    steps = 0
    start = time.perf_counter()
    while t < case.duration_s - 1e-9:
        dt = min(flow.calc_time_step(), MAX_DT_S, case.duration_s - t)
        flow.overland_flow(dt=dt)  # one inner step: dt is within its stable step
        np.maximum(h_max, h[core], out=h_max)
        t += dt
        steps += 1
    wall = time.perf_counter() - start
    error = ((float(h[core].sum()) - stored0) * case.dx_m**2 - case.rain_m3) / case.rain_m3
    return Run("landlab", wall, steps, case.cells, h_max.reshape(rows, cols)[::-1], error)


def run_anuga(case: RainCase) -> Run:
    """ANUGA (default DE0 flow algorithm) on the DEM cells, each cut into four triangles.

    Bed and friction are set per triangle from the cell it lies in (a
    piecewise constant bed, as in the grid schemes); edges are reflective;
    the step is ANUGA's own, capped at the same 10 s.  Maximum depths come
    from its ``Collect_max_quantities_operator`` (every step) and are
    averaged over the four triangles of a cell.
    """
    import anuga
    from anuga.operators.collect_max_quantities_operator import Collect_max_quantities_operator

    rows, cols = case.z_m.shape
    domain = anuga.rectangular_cross_domain(cols, rows, len1=cols * case.dx_m, len2=rows * case.dx_m)
    domain.set_store(False)
    xy = domain.centroid_coordinates
    col = np.floor(xy[:, 0] / case.dx_m).astype(np.int64)
    row = rows - 1 - np.floor(xy[:, 1] / case.dx_m).astype(np.int64)
    bed = case.z_m[row, col]
    domain.set_quantity("elevation", bed, location="centroids")
    domain.set_quantity("stage", bed, location="centroids")
    domain.set_quantity("friction", case.manning_n, location="centroids")
    wall_bc = anuga.Reflective_boundary(domain)
    domain.set_boundary({"left": wall_bc, "right": wall_bc, "top": wall_bc, "bottom": wall_bc})
    domain.set_evolve_max_timestep(MAX_DT_S)
    anuga.Rate_operator(domain, rate=case.rain_m_s)
    maxima = Collect_max_quantities_operator(domain)
    start = time.perf_counter()
    for _ in domain.evolve(yieldstep=case.duration_s, finaltime=case.duration_s):
        pass
    wall = time.perf_counter() - start
    depth = domain.quantities["stage"].centroid_values - domain.quantities["elevation"].centroid_values
    error = (float(depth @ domain.areas) - case.rain_m3) / case.rain_m3
    per_cell = np.zeros((rows, cols))
    np.add.at(per_cell, (row, col), maxima.max_depth * 0.25)
    return Run("ANUGA", wall, int(domain.number_of_steps), len(bed), per_cell, error)


BACKENDS: dict[str, Callable[[RainCase], Run]] = {"ours": run_ours, "landlab": run_landlab, "ANUGA": run_anuga}
IMPORTS = {"landlab": "landlab.components", "ANUGA": "anuga"}


def unavailable(name: str) -> str | None:
    """Why a backend cannot run here (the import error, verbatim), or None if it imports."""
    module = IMPORTS.get(name)
    if module is None:
        return None
    try:
        __import__(module)
    except Exception as exc:  # a broken install can raise more than ImportError
        return f"{type(exc).__name__}: {exc}"
    return None


# ---- comparison and output ----------------------------------------------------------


class Agreement(NamedTuple):
    """Max depth maps of two runs compared cell by cell."""

    wet_dry_share: float
    """Share of all cells that are wet in both maps or dry in both."""
    wet_dry_share_of_wet: float
    """The same share among cells wet in either map."""
    mean_abs_diff_m: float
    wet_cells: tuple[int, int]
    """Cells wet in the first map, in the second."""


def agreement(a: np.ndarray, b: np.ndarray, wet_m: float) -> Agreement:
    """Wet/dry agreement at ``wet_m`` over all cells and over cells wet in either map; mean |a - b| (m).

    The share among cells wet in either map is the stricter figure: on a mostly
    dry crop the share over all cells is high whatever the wet cells do.
    """
    wet_a, wet_b = a > wet_m, b > wet_m
    same = wet_a == wet_b
    either = wet_a | wet_b
    of_wet = float(same[either].mean()) if either.any() else 1.0
    return Agreement(float(same.mean()), of_wet, float(np.abs(a - b).mean()),
                     (int(wet_a.sum()), int(wet_b.sum())))


def kernel_speed(size: int, steps: int, times: int, rain_m_s: float,
                 yardstick: Yardstick) -> tuple[list[float], list[float], float]:
    """Cell updates/s of ``steps`` steps, ``times`` times, on a wetted crop with open edges; the plain kernel's
    rate in a turn before each; and the balance error."""
    from models.flood.hydraulics import FloodGrid, Simulation

    z, dx = load_crop(size)
    sim = Simulation(FloodGrid(z, dx, manning_n=0.03), boundary="open", source_rate=lambda t: rain_m_s,
                     theta=0.8)
    sim.run_until(600.0)  # wet the crop (and compile) before timing
    rates, plain = [], []
    for _ in range(times):
        plain.append(yardstick.rate(WINDOW_S))
        before = sim.cell_updates
        start = time.perf_counter()
        for _ in range(steps):
            sim.step(sim.next_dt_s())
        rates.append((sim.cell_updates - before) / (time.perf_counter() - start))
    return rates, plain, sim.balance.relative_error


MANNING_BY_LAND_CLASS = {"11": 0.035, "20": 0.05}
"""n (s/m^(1/3)) of the sample's two land classes for the full-physics run: water and wooded strips, built-up land."""


def full_physics_speed(duration_s: float, times: int, rain_from_s: float, source_step_s: float,
                       yardstick: Yardstick) -> tuple[list[float], list[float], float]:
    """(cell updates/s of each run, the plain kernel's rate in a turn before each, share of the grid in the
    domain) of ``twin flood simulate`` on the Carlisle 5 m grid with every source on (see the docstring).

    ``rain_from_s``: the rain series from that time on (a row's time), moved to start at 0.
    ``source_step_s``: how often rain and infiltration are applied (s; 0: at every step).
    """
    from models.flood.simulate import FloodOptions, prepare, run

    data = ROOT / "gis_data" / "carlisle"
    rates, plain, share = [], [], math.nan
    with tempfile.TemporaryDirectory() as tmp:
        rain = data / "rain.csv"
        if rain_from_s > 0.0:
            rain = Path(tmp) / "rain_moved.csv"
            with open(data / "rain.csv", newline="") as src, open(rain, "w", newline="") as dst:
                rows, out = csv.reader(src), csv.writer(dst)
                out.writerow(next(rows))
                kept = [[float(r[0]) - rain_from_s, *r[1:]] for r in rows if float(r[0]) >= rain_from_s]
                if not kept or kept[0][0] != 0.0:
                    raise SystemExit(f"--heavy-from {rain_from_s:g} s is not a time of {data / 'rain.csv'}")
                out.writerows(kept)
        table = Path(tmp) / "landcover_n.csv"
        with open(data / "landcover_classes.csv", newline="") as src, open(table, "w", newline="") as dst:
            out = csv.writer(dst)
            out.writerow(["value", "manning_n", "land_class"])
            for row in csv.DictReader(src):
                out.writerow([row["value"], MANNING_BY_LAND_CLASS[row["land_class"]], row["land_class"]])
        for i in range(times):
            options = FloodOptions(dem=data / "dem.tif", duration_s=duration_s, out=Path(tmp) / f"run{i}",
                                   rain=rain, rain_zones=data / "rain_zones.tif",
                                   inflows=data / "inflows.geojson", landcover=data / "landcover.tif",
                                   landcover_table=table, infiltration="green_ampt",
                                   storm_formula="beijing", drainage_years=3.0,
                                   buildings=data / "buildings_derived.gpkg", boundary="open",
                                   source_step_s=source_step_s)
            prepared = prepare(options)
            share = float(prepared.grid.active.mean())
            plain.append(yardstick.rate(WINDOW_S))
            rates.append(run(prepared).cell_updates_per_s)
    return rates, plain, share


def _against(rates: list[float], plain: list[float]) -> str:
    """Each run's rate as a multiple of the plain kernel's in the turn before it: the median, and the runs."""
    ratios = [r / p for r, p in zip(rates, plain)]
    return (f"{statistics.median(ratios):.2f}x the plain kernel timed beside it "
            f"({', '.join(f'{x:.2f}' for x in ratios)})")


def print_runs(case: RainCase, runs: list[Run], wet_m: float) -> None:
    """A table of the runs on one case, then ratios and depth agreement against ours."""
    rows, cols = case.z_m.shape
    print(f"\n{rows} x {cols} cells of {case.dx_m:g} m, rain {case.rain_m_s * 3.6e6:g} mm/h for "
          f"{case.duration_s:g} s, Manning n {case.manning_n:g}, closed edges")
    print(f"{'':<9} {'wall s':>9} {'steps':>7} {'updates/step':>13} {'updates/s':>11} {'max depth m':>12} "
          f"{'volume error':>13}")
    for r in runs:
        print(f"{r.name:<9} {r.wall_s:9.3f} {r.steps:7d} {r.updates_per_step:13d} {r.updates_per_s:11.3g} "
              f"{r.max_depth.max():12.3f} {r.volume_error:13.1e}")
    ours = runs[0]
    for r in runs[1:]:
        a = agreement(ours.max_depth, r.max_depth, wet_m)
        per_update = ours.updates_per_s / r.updates_per_s
        per_cell_step = (ours.steps * case.cells / ours.wall_s) / (r.steps * case.cells / r.wall_s)
        print(f"ours vs {r.name}: wall time {r.wall_s / ours.wall_s:.1f}x shorter; per update "
              f"{per_update:.1f}x faster" + (f" (per DEM cell and step {per_cell_step:.1f}x)"
                                              if r.updates_per_step != case.cells else ""))
        print(f"  max depth: wet/dry at {wet_m:g} m agrees on {a.wet_dry_share:.2%} of cells, on "
              f"{a.wet_dry_share_of_wet:.2%} of cells wet in either ({a.wet_cells[0]} wet in ours, "
              f"{a.wet_cells[1]} in {r.name}); mean |difference| {a.mean_abs_diff_m * 1000:.2f} mm")


def compare(case: RainCase, names: list[str], times: int, wet_m: float) -> None:
    """Run each backend on one case and print the table (a backend that cannot import is named with why)."""
    usable = []
    for name in names:
        reason = unavailable(name)
        if reason is not None:
            print(f"{name}: not run, it cannot be imported here ({reason})")
            continue
        usable.append(BACKENDS[name])
    print_runs(case, interleaved(usable, case, times), wet_m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel-size", type=int, default=1000, help="crop for the kernel speed (cells a side)")
    parser.add_argument("--kernel-steps", type=int, default=200, help="steps per kernel timing")
    parser.add_argument("--size", type=int, default=200, help="crop for ours against landlab (cells a side)")
    parser.add_argument("--duration", type=float, default=1800.0, help="simulated time against landlab (s)")
    parser.add_argument("--anuga-size", type=int, default=40, help="crop for the ANUGA comparison")
    parser.add_argument("--anuga-duration", type=float, default=1800.0, help="simulated time with ANUGA (s)")
    parser.add_argument("--rain-mm-h", type=float, default=100.0, help="uniform rain (mm/h)")
    parser.add_argument("--manning", type=float, default=0.03, help="Manning n (s/m^(1/3))")
    parser.add_argument("--wet-m", type=float, default=0.1, help="depth that counts as wet (m)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (the median is kept)")
    parser.add_argument("--full-duration", type=float, default=300.0,
                        help="simulated time of the full-physics run on the whole grid (s)")
    parser.add_argument("--heavy-from", type=float, default=81600.0,
                        help="time (s) of the rain row that starts the full-physics run in heavy rain")
    parser.add_argument("--heavy-duration", type=float, default=1800.0,
                        help="simulated time of the full-physics run in heavy rain (s); 0 skips it")
    parser.add_argument("--source-step", type=float, default=None,
                        help="seconds between applications of rain and infiltration in the full-physics runs "
                             "(default: twin flood simulate's)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["kernel", "full", "landlab", "anuga"],
                        help="parts to leave out")
    args = parser.parse_args()

    import numba

    threads = numba.get_num_threads()
    print(f"threads: numba {threads}, OpenMP (landlab, ANUGA) {os.environ.get('OMP_NUM_THREADS')}, "
          f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY')}, GOMP_SPINCOUNT {os.environ.get('GOMP_SPINCOUNT')}; "
          f"timings are medians of {args.repeat}")
    yardstick = None
    if "kernel" not in args.skip or "full" not in args.skip:
        z, dx = load_crop(args.kernel_size)
        yardstick = Yardstick(z, dx, args.manning, args.rain_mm_h / 3.6e6, wet_s=600.0)
    if "kernel" not in args.skip:
        rates, plain, error = kernel_speed(args.kernel_size, args.kernel_steps, args.repeat,
                                           args.rain_mm_h / 3.6e6, yardstick)
        print(f"kernel: {args.kernel_size} x {args.kernel_size} Carlisle crop, open edges, theta 0.8, rain: "
              f"{statistics.median(rates):.3g} cell updates/s (runs: {', '.join(f'{r:.3g}' for r in rates)}), "
              f"{_against(rates, plain)}; balance error {error:.1e}; numba threading layer "
              f"{numba.threading_layer()}")
    if "full" not in args.skip:
        from models.flood.simulate import DEFAULT_SOURCE_STEP_S

        step = DEFAULT_SOURCE_STEP_S if args.source_step is None else args.source_step
        wettest = f"its wettest {args.heavy_duration:g} s (the rain from {args.heavy_from:g} s on, moved to 0)"
        for label, duration, rain_from, source_step in (
                (f"the storm's first {args.full_duration:g} s", args.full_duration, 0.0, step),
                (wettest, args.heavy_duration, args.heavy_from, step),
                (wettest, args.heavy_duration if step > 0 else 0.0, args.heavy_from, 0.0)):
            if duration <= 0:
                continue
            rates, plain, share = full_physics_speed(duration, args.repeat, rain_from, source_step, yardstick)
            rate = statistics.median(rates)
            sources = f"rain and infiltration every {source_step:g} s" if source_step > 0 else (
                "rain and infiltration at every step")
            print(f"twin flood simulate, all sources on, drains too ({sources}), Carlisle 5 m (1855 x 1813), {label}: "
                  f"{rate:.3g} cell updates/s (runs: {', '.join(f'{r:.3g}' for r in rates)}), "
                  f"{_against(rates, plain)}; the domain is {share:.0%} of the grid: {rate * share:.3g} updates/s "
                  f"of its cells")
    if yardstick is not None:
        print(f"plain kernel ({args.kernel_size} x {args.kernel_size} crop, wetted, uniform rain), all turns: "
              f"{statistics.median(yardstick.rates):.3g} cell updates/s (from {min(yardstick.rates):.3g} to "
              f"{max(yardstick.rates):.3g}: this machine's speed while the bench ran)")
    if "landlab" not in args.skip:
        case = rain_case(args.size, args.manning, args.rain_mm_h, args.duration)
        compare(case, ["ours", "landlab"], args.repeat, args.wet_m)
    if "anuga" not in args.skip:
        case = rain_case(args.anuga_size, args.manning, args.rain_mm_h, args.anuga_duration)
        compare(case, ["ours", "landlab", "ANUGA"], args.repeat, args.wet_m)


if __name__ == "__main__":
    # One thread count for all three: numba reads its own, the OpenMP runtimes this one.  Passive
    # waiting: OpenMP threads that spin between parallel loops (the default) make landlab up to 20x
    # slower, and numba's own OpenMP pool several times slower, when other work shares the cores.
    os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("NUMBA_NUM_THREADS", str(os.cpu_count())))
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    # ... but a short spin (about 0.3 ms, the flood package's default) before a thread sleeps, for all
    # three runtimes alike: waking a sleeping thread at every step costs our kernel ~15 % at 200 x 200.
    from models.flood.cpu import SPIN_COUNT

    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
    main()
