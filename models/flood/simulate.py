"""Headless flood run: read the inputs of ``twin flood simulate``, run the solver, write the results.

Every input is checked before anything is written, and every problem found is
reported at once (file, line or field, what to do).  Rasters are brought onto
the DEM's cells first (nearest neighbour for codes, bilinear for depths), then
coarsened with the DEM: heights, depths and Manning's n by block mean, codes
(land cover, rain zones) by block majority, buildings where they cover more
than half of a block's valid cells.

Results go to a staging folder ``<out>.tmp-<hex>`` beside ``--out`` and the
folder is renamed into place only when complete, so a failed or interrupted
run never leaves a mix of old and new files or a half-written folder; a run
into a non-empty ``--out`` is refused before it starts.

Outputs (float32 GeoTIFFs with the DEM's CRS and the (coarsened) transform,
NaN where there is no open cell: outside the DEM and on buildings):
``max_depth.tif`` (m), ``max_speed.tif`` (m/s), ``arrival_time.tif`` (s, first
time deeper than 0.1 m, NaN where never), ``depth_<t>.tif`` (m, every
``frame_every_s``), ``probes.csv`` (water level and depth per probe),
``mass_balance.json`` (volume terms, cost, inputs with SHA-256, versions).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from models.flood.boundaries import DischargeInflow, Hydrograph, LevelBoundary
from models.flood.hydraulics import FloodGrid, MassBalance, Simulation, coarsen
from models.flood.sources import (
    DrainageSink,
    Infiltration,
    RainSeries,
    StormFormula,
    ZonedSources,
    chicago_hyetograph,
    load_infiltration_table,
    parse_storm_formula,
    read_rain_csv,
)
from twin.errors import InputError, Problem
from twin.fileio import atomic_write
from twin.geo.raster import Grid, read_grid
from twin.progress import NO_FEEDBACK, Feedback

COMMAND = "twin flood simulate"
DEFAULT_MANNING_N = 0.03
"""s/m^(1/3): the solver's default, between smooth asphalt (0.013-0.016) and short grass (0.03-0.035)."""
DEFAULT_REPORT_EVERY_S = 60.0
DEFAULT_SOURCE_STEP_S = 2.0
"""s: rain and infiltration are applied this often (a few hydraulic steps; see ``Simulation``'s source_step_s).
Rain series change every few minutes and soils over minutes to hours, while the step is under a second on a
deep river at 5 m; a step that applies none costs the solver about half as much (Carlisle in heavy rain)."""
ARRIVAL_DEPTH_M = 0.1
FLOOD_DEPTHS_M = (0.1, 0.3)
INFILTRATION_MODELS = ("none", "green_ampt", "horton")
BOUNDARY_KINDS = ("closed", "open")
INFLOW_KINDS = {"discharge": "m3/s", "level": "m"}
_TILE = 256
_TILED_FROM = 512  # cells on both sides; smaller grids are written in strips


# ----------------------------------------------------------------------------- options


DEFAULT_STORM_DURATION_S = 7200.0
"""s: a design storm's length (short-duration design storms in Chinese practice last 2 to 3 hours)."""
DEFAULT_PEAK_RATIO = 0.4
"""Where the design storm's peak falls, as a share of its length (the Chicago storm's r; 0.4 is usual)."""
DEFAULT_STORM_STEP_S = 60.0
"""s: the design storm's intensity is its mean over each such step."""
DEFAULT_DRAIN_DURATION_MIN = 10.0
"""min: the rain duration drains are sized for (the inlet time, 5-15 min in GB 50014-2021)."""
DEFAULT_RUNOFF_COEFFICIENT = 0.6
"""Composite runoff coefficient of drained land (dense built-up areas: 0.60-0.70 in GB 50014-2021)."""


@dataclass
class FloodOptions:
    """What ``twin flood simulate`` was asked to do (paths as given, times in s)."""

    dem: Path
    duration_s: float
    out: Path
    rain: Path | None = None
    rain_zones: Path | None = None
    storm_formula: str | None = None
    """The storm intensity formula (a name of ``STORM_FORMULAS``, or "A,C,b,n") of the design storm and drains."""
    design_storm_years: float | None = None
    """Rain a Chicago design storm of this return period (years) from the formula, in place of --rain."""
    storm_duration_s: float = DEFAULT_STORM_DURATION_S
    peak_ratio: float = DEFAULT_PEAK_RATIO
    storm_step_s: float = DEFAULT_STORM_STEP_S
    drainage_years: float | None = None
    """Storm drains sized for the formula's rain of this return period (years) take water from drained land."""
    drain_duration_min: float = DEFAULT_DRAIN_DURATION_MIN
    runoff_coefficient: float = DEFAULT_RUNOFF_COEFFICIENT
    inflows: Path | None = None
    manning_n: float | None = None
    landcover: Path | None = None
    landcover_table: Path | None = None
    infiltration: str = "none"
    buildings: Path | None = None
    probes: Path | None = None
    initial_level_m: float | None = None
    initial_depth: Path | None = None
    boundary: str = "closed"
    coarsen: int = 1
    frame_every_s: float | None = None
    report_every_s: float | None = None
    source_step_s: float = DEFAULT_SOURCE_STEP_S
    command_line: str = ""

    @property
    def report_interval_s(self) -> float:
        """Probe rows and progress every this many seconds: the report, else the frame, else 60 s."""
        return self.report_every_s or self.frame_every_s or DEFAULT_REPORT_EVERY_S


class _Problems:
    """Problems gathered across all inputs, raised once."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, source: str | os.PathLike[str], where: str, message: str) -> None:
        self.items.append(Problem(str(source), where, message))

    @contextmanager
    def gather(self) -> Iterator[None]:
        """Keep the problems of an InputError raised inside and carry on."""
        try:
            yield
        except InputError as exc:
            self.items.extend(exc.problems)

    def raise_if_any(self) -> None:
        if self.items:
            raise InputError(self.items)


def check_options(opt: FloodOptions, problems: _Problems) -> None:
    """Combinations and ranges of the options themselves (no files read)."""
    def bad(flag: str, message: str) -> None:
        problems.add(COMMAND, flag, message)

    if not (math.isfinite(opt.duration_s) and opt.duration_s > 0):
        bad("--duration", f"{opt.duration_s:g} is not a positive number of seconds")
    for flag, value in (("--frame-every", opt.frame_every_s), ("--report-every", opt.report_every_s)):
        if value is not None and not (math.isfinite(value) and value > 0):
            bad(flag, f"{value:g} is not a positive number of seconds")
    if not (math.isfinite(opt.source_step_s) and opt.source_step_s >= 0):
        bad("--source-step", f"{opt.source_step_s:g} is not a time >= 0 s (0 applies rain and infiltration at "
                             "every step)")
    if opt.coarsen < 1:
        bad("--coarsen", f"{opt.coarsen} is not a whole factor >= 1 (1 keeps the DEM's cells)")
    if opt.manning_n is not None and opt.landcover is not None:
        bad("--manning, --landcover", "give either one Manning's n for every cell (--manning) or a land-cover "
                                      "raster with its table (--landcover, --landcover-table), not both")
    if opt.manning_n is not None and not (math.isfinite(opt.manning_n) and opt.manning_n > 0):
        bad("--manning", f"{opt.manning_n:g} is not a Manning's n > 0 (s/m^(1/3); e.g. 0.013 asphalt, 0.035 grass)")
    if (opt.landcover is None) != (opt.landcover_table is None):
        given, missing = ("--landcover", "--landcover-table") if opt.landcover else ("--landcover-table", "--landcover")
        bad(f"{given}, {missing}", f"{given} needs {missing}: the raster's values get their Manning's n "
                                   "(and land class) from the table")
    if opt.infiltration not in INFILTRATION_MODELS:
        bad("--infiltration", f"{opt.infiltration!r} is not one of {', '.join(INFILTRATION_MODELS)}")
    elif opt.infiltration != "none" and opt.landcover is None:
        bad("--infiltration, --landcover", f"{opt.infiltration} infiltration needs soil classes per cell: give "
                                           "--landcover and a --landcover-table with a land_class column")
    if opt.initial_level_m is not None and opt.initial_depth is not None:
        bad("--initial-level, --initial-depth", "give either a water level for the whole domain or a depth "
                                                "raster, not both")
    if opt.initial_level_m is not None and not math.isfinite(opt.initial_level_m):
        bad("--initial-level", "the initial water level must be a finite number (m, the DEM's datum)")
    if opt.rain_zones is not None and opt.rain is None:
        bad("--rain-zones", "rain zones need a rain file (--rain) with one column per zone")
    check_storm_options(opt, bad)
    if opt.boundary not in BOUNDARY_KINDS:
        bad("--boundary", f"{opt.boundary!r} is not one of {', '.join(BOUNDARY_KINDS)}")
    out = Path(opt.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        bad("--out", f"{out} already exists and is not an empty folder; choose a new folder (nothing is "
                     "overwritten)")
    inputs = (("--dem", opt.dem), ("--rain", opt.rain), ("--rain-zones", opt.rain_zones), ("--inflows", opt.inflows),
              ("--landcover", opt.landcover), ("--landcover-table", opt.landcover_table),
              ("--buildings", opt.buildings), ("--probes", opt.probes), ("--initial-depth", opt.initial_depth))
    for flag, path in inputs:
        if path is not None and not Path(path).is_file():
            problems.add(path, flag, "file not found; check the path")


def check_storm_options(opt: FloodOptions, bad: Callable[[str, str], None]) -> None:
    """The design storm's and the drains' flags: together, in range, and no design storm beside a rain file."""
    wanted = [flag for flag, v in (("--design-storm", opt.design_storm_years), ("--drainage", opt.drainage_years))
              if v is not None]
    if opt.storm_formula is None:
        for flag in wanted:
            bad(flag, "needs the storm intensity formula it comes from: --storm-formula NAME or A,C,b,n")
        return
    if not wanted:
        bad("--storm-formula", "the formula alone does nothing: add --design-storm YEARS (rain) or "
                               "--drainage YEARS (drains)")
    try:
        formula = parse_storm_formula(opt.storm_formula)
    except ValueError as exc:
        bad("--storm-formula", str(exc))
        formula = None
    if formula is not None and not (formula.A > 0 and formula.b >= 0 and 0 <= formula.n < 1):
        bad("--storm-formula", f"A = {formula.A:g}, b = {formula.b:g}, n = {formula.n:g}: the formula needs "
                               "A > 0, b >= 0 and 0 <= n < 1")
    for flag, period in (("--design-storm", opt.design_storm_years), ("--drainage", opt.drainage_years)):
        if period is None:
            continue
        if not (math.isfinite(period) and period > 0):
            bad(flag, f"{period:g} is not a return period > 0 years")
        elif formula is not None and 1.0 + formula.C * math.log10(period) <= 0:
            bad(flag, f"{period:g} years makes 1 + C lg P = {1.0 + formula.C * math.log10(period):.3g} <= 0 in "
                      "the formula; take a longer return period")
    if opt.design_storm_years is not None:
        if opt.rain is not None:
            bad("--rain, --design-storm", "give either a rain file or a design storm, not both")
        if not (math.isfinite(opt.storm_duration_s) and opt.storm_duration_s > 0):
            bad("--storm-duration", f"{opt.storm_duration_s:g} is not a positive number of seconds")
        if not 0.0 <= opt.peak_ratio <= 1.0:
            bad("--peak-ratio", f"{opt.peak_ratio:g} is not a share of the storm between 0 and 1")
        if not (math.isfinite(opt.storm_step_s) and 0 < opt.storm_step_s):
            bad("--storm-step", f"{opt.storm_step_s:g} is not a positive number of seconds")
        elif math.isfinite(opt.storm_duration_s) and opt.storm_step_s > opt.storm_duration_s > 0:
            bad("--storm-step", f"{opt.storm_step_s:g} s is longer than the storm ({opt.storm_duration_s:g} s)")
    if opt.drainage_years is not None:
        if not (math.isfinite(opt.drain_duration_min) and opt.drain_duration_min > 0):
            bad("--drain-duration", f"{opt.drain_duration_min:g} is not a positive number of minutes")
        if not 0.0 < opt.runoff_coefficient <= 1.0:
            bad("--runoff-coefficient", f"{opt.runoff_coefficient:g} is not a share in (0, 1]")


def design_rain(opt: FloodOptions) -> RainSeries:
    """The Chicago design storm the options ask for (checked by :func:`check_storm_options`); uniform rain."""
    formula = parse_storm_formula(opt.storm_formula or "")
    rain = chicago_hyetograph(**formula.coefficients(), return_period_years=float(opt.design_storm_years or 0),
                              duration_s=opt.storm_duration_s, step_s=opt.storm_step_s,
                              peak_position_r=opt.peak_ratio)
    rain.meta.update(formula=formula.name, formula_source=formula.source)
    return rain


def drains_on(formula: StormFormula, return_period_years: float, duration_min: float, runoff_coefficient: float,
              land_class: np.ndarray | None, active: np.ndarray) -> DrainageSink:
    """Drains sized by the rational method on built-up and transport land (every open cell without classes)."""
    classes = land_class if land_class is not None else np.where(active, 20, -1)
    return DrainageSink.from_design_storm(formula, return_period_years=return_period_years,
                                          duration_min=duration_min, runoff_coefficient=runoff_coefficient,
                                          class_per_cell=np.where(active, classes, -1))


# ----------------------------------------------------------------------------- the domain


@dataclass
class Domain:
    """The simulation grid: the DEM coarsened by ``factor``, its georeference and per-cell fields."""

    dem: Grid
    factor: int
    z_m: np.ndarray
    transform: Affine
    valid: np.ndarray
    file_crs: Any = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.z_m.shape  # type: ignore[return-value]

    @property
    def cell_size_m(self) -> tuple[float, float]:
        return self.grid(self.z_m).cell_size

    @property
    def cell_area_m2(self) -> float:
        return self.grid(self.z_m).cell_area

    def grid(self, values: np.ndarray, *, nodata: int | None = None, source: str = "") -> Grid:
        """``values`` on the simulation cells as a Grid."""
        return Grid(values=values, transform=self.transform, crs=self.dem.crs, nodata=nodata, source=source)

    def bounds(self) -> tuple[float, float, float, float]:
        return self.grid(self.z_m).bounds

    def rowcol(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.grid(self.z_m).rowcol(x, y)

    def centre(self, row: int, col: int) -> tuple[float, float]:
        return tuple(self.transform @ (col + 0.5, row + 0.5))  # type: ignore[return-value]

    def mean(self, fine: np.ndarray) -> np.ndarray:
        """Block mean (NaN ignored) of a field on the DEM's cells."""
        return fine if self.factor == 1 else coarsen(fine, self.factor)

    def majority(self, fine_codes: np.ndarray, nodata: int) -> np.ndarray:
        """Most common code per block (ties: the lowest code); ``nodata`` only where a block has no code."""
        if self.factor == 1:
            return fine_codes
        k = self.factor
        rows, cols = fine_codes.shape
        out_r, out_c = -(-rows // k), -(-cols // k)
        padded = np.full((out_r * k, out_c * k), nodata, dtype=fine_codes.dtype)
        padded[:rows, :cols] = fine_codes
        blocks = padded.reshape(out_r, k, out_c, k).transpose(0, 2, 1, 3).reshape(out_r, out_c, k * k)
        best = np.full((out_r, out_c), nodata, dtype=fine_codes.dtype)
        best_count = np.zeros((out_r, out_c), dtype=np.int32)
        for code in np.unique(fine_codes):
            if code == nodata:
                continue
            count = (blocks == code).sum(axis=2, dtype=np.int32)
            better = count > best_count
            best[better], best_count[better] = code, count[better]
        return best


def load_domain(opt: FloodOptions, problems: _Problems) -> Domain | None:
    """The DEM, checked (CRS in metres, north up, some valid cells), and its coarsened bed."""
    before = len(problems.items)
    with problems.gather():
        dem = read_grid(opt.dem, name="dem", units="m")
        src = str(opt.dem)
        crs_ok = dem.crs.is_projected and all(a.unit_name in ("metre", "meter") for a in dem.crs.axis_info[:2])
        if not crs_ok:
            problems.add(src, "crs", f"{dem.crs.name} is not a projected CRS in metres; reproject the DEM "
                                     "(e.g. gdalwarp -t_srs EPSG:27700) so cells have sizes in metres")
        if dem.transform.b != 0 or dem.transform.d != 0 or dem.transform.e >= 0:
            problems.add(src, "transform", "the grid is rotated or not north-up; warp it to a north-up grid "
                                           "(gdalwarp)")
        valid = np.isfinite(dem.values)
        if not valid.any():
            problems.add(src, "values", "every cell is nodata; the DEM has no terrain to flood")
        if len(problems.items) > before:
            return None
        k = max(int(opt.coarsen), 1)
        z = dem.values.astype(np.float64) if k == 1 else coarsen(dem.values, k)
        return Domain(dem, k, z, dem.transform @ Affine.scale(k, k), np.isfinite(z), _file_crs(opt.dem))
    return None


def _file_crs(path: Path) -> Any:
    """The raster's CRS as stored in the file, so the outputs carry exactly the DEM's definition."""
    import rasterio

    with rasterio.open(path) as src:
        return src.crs


def _on_dem(path: Path, flag: str, domain: Domain, problems: _Problems, *, categorical: bool) -> np.ndarray | None:
    """A raster resampled onto the DEM's cells; None (with a problem) when it cannot be read."""
    from twin.city.grids import align_to

    with problems.gather():
        grid = read_grid(path, dst_crs=domain.dem.crs, categorical=categorical, name=flag)
        like = Grid(values=domain.dem.values, transform=domain.dem.transform, crs=domain.dem.crs, name="dem")
        return align_to(grid, like).values
    return None


# ----------------------------------------------------------------------------- small CSV tables


def _read_table(path: Path, required: tuple[str, ...], problems: _Problems,
                what: str) -> list[tuple[int, dict[str, str]]] | None:
    """(line, row) of a CSV with the ``required`` columns; None (with problems) if the header is wrong."""
    src = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            names = [n.strip() for n in reader.fieldnames or []]
            reader.fieldnames = names
            rows = [(reader.line_num, {k: (v or "").strip() for k, v in r.items() if k is not None})
                    for r in reader if any((v or "").strip() for v in r.values() if isinstance(v, str))]
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(src, "", f"cannot read the {what} ({exc})")
        return None
    missing = [c for c in required if c not in names]
    if missing:
        problems.add(src, "line 1", f"no column {', '.join(missing)}; a {what} has the columns "
                                    f"{','.join(required)} (found: {','.join(names) or 'nothing'})")
        return None
    if not rows:
        problems.add(src, "", f"the {what} has no rows")
        return None
    return rows


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_hydrograph(path: Path, kind: str, name: str, problems: _Problems) -> Hydrograph | None:
    """``time_s,value`` rows (m3/s for discharge, m for level), times strictly increasing."""
    src = str(path)
    rows = _read_table(path, ("time_s", "value"), problems, "hydrograph")
    if rows is None:
        return None
    before = len(problems.items)
    times: list[float] = []
    values: list[float] = []
    last: tuple[float, int] | None = None
    for line, row in rows:
        t, v = _number(row["time_s"]), _number(row["value"])
        if t is None:
            problems.add(src, f"line {line}, column time_s", f"{row['time_s']!r} is not a number of seconds")
        elif last is not None and t <= last[0]:
            problems.add(src, f"line {line}, column time_s", f"time {t:g} s is not after {last[0]:g} s on line "
                                                             f"{last[1]}; sort the rows by time, no repeats")
        if v is None:
            problems.add(src, f"line {line}, column value", f"{row['value']!r} is not a number "
                                                            f"({INFLOW_KINDS.get(kind, '')})")
        elif kind == "discharge" and v < 0:
            problems.add(src, f"line {line}, column value", f"discharge {v:g} m3/s is negative; inflows are >= 0")
        if t is not None and (last is None or t > last[0]):
            last = (t, line)
        times.append(t if t is not None else math.nan)
        values.append(v if v is not None else math.nan)
    if len(problems.items) > before:
        return None
    return Hydrograph(times, values, name=name)


@dataclass
class Probe:
    name: str
    x: float
    y: float
    row: int = -1
    col: int = -1


def read_probes(path: Path, problems: _Problems) -> list[Probe]:
    """``name,x,y`` rows in the DEM's CRS."""
    src = str(path)
    rows = _read_table(path, ("name", "x", "y"), problems, "probe table")
    if rows is None:
        return []
    probes: list[Probe] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        name, x, y = row["name"], _number(row["x"]), _number(row["y"])
        ok = True
        if not name:
            problems.add(src, f"line {line}, column name", "empty name; every probe needs a name")
            ok = False
        elif name in seen:
            problems.add(src, f"line {line}, column name", f"probe {name!r} is already on line {seen[name]}")
            ok = False
        elif any(c in name for c in ',"\n'):
            problems.add(src, f"line {line}, column name", f"{name!r}: use a name without commas or quotes")
            ok = False
        seen.setdefault(name, line)
        for col, value in (("x", x), ("y", y)):
            if value is None:
                problems.add(src, f"line {line}, column {col}", f"{row[col]!r} is not a coordinate (the DEM's CRS)")
                ok = False
        if ok:
            probes.append(Probe(name, float(x), float(y)))  # type: ignore[arg-type]
    return probes


def place_probes(path: Path, probes: list[Probe], domain: Domain, walls: np.ndarray,
                 problems: _Problems) -> None:
    """Cell of each probe: inside the grid, on an open cell."""
    src = str(path)
    xmin, ymin, xmax, ymax = domain.bounds()
    rows, cols = domain.shape
    for k, p in enumerate(probes):
        r, c = (int(v[0]) for v in domain.rowcol(np.array([p.x]), np.array([p.y])))
        where = f"probe {p.name!r}, columns x,y"
        if not (0 <= r < rows and 0 <= c < cols):
            problems.add(src, where, f"({p.x:g}, {p.y:g}) is outside the DEM grid (x {xmin:g} .. {xmax:g}, "
                                     f"y {ymin:g} .. {ymax:g}); give coordinates in the DEM's CRS inside it")
        elif not domain.valid[r, c]:
            problems.add(src, where, f"({p.x:g}, {p.y:g}) falls on a nodata cell of the DEM; move it onto terrain")
        elif walls[r, c]:
            problems.add(src, where, f"({p.x:g}, {p.y:g}) falls inside a building (a wall, never wet); "
                                     "move it onto open ground")
        else:
            p.row, p.col = r, c


# ----------------------------------------------------------------------------- roughness, soils, walls


@dataclass
class LandCover:
    manning_n: np.ndarray
    land_class: np.ndarray | None


def read_landcover(opt: FloodOptions, domain: Domain, problems: _Problems) -> LandCover | None:
    """Manning's n (block mean) and land class (block majority) per cell from the raster and its table."""
    table_path = Path(opt.landcover_table)  # type: ignore[arg-type]
    src = str(table_path)
    rows = _read_table(table_path, ("value", "manning_n"), problems, "land-cover table")
    codes = _on_dem(Path(opt.landcover), "landcover", domain, problems, categorical=True)  # type: ignore[arg-type]
    if rows is None:
        return None
    need_class = opt.infiltration != "none"
    has_class = "land_class" in rows[0][1]
    read_class = need_class or (has_class and opt.drainage_years is not None)  # drains: built-up land only
    if need_class and not has_class:
        problems.add(src, "line 1", f"no land_class column; {opt.infiltration} infiltration needs a two-digit "
                                    "land class per value (e.g. 20 urban, 11 water) from "
                                    "models/flood/data/infiltration_classes.csv")
    known: set[str] = set()
    if need_class:
        with problems.gather():
            known = set(load_infiltration_table()["code"])
    n_of: dict[int, float] = {}
    class_of: dict[int, int] = {}
    lines: dict[int, int] = {}
    for line, row in rows:
        value, n = _number(row["value"]), _number(row["manning_n"])
        if value is None or value != int(value):
            problems.add(src, f"line {line}, column value", f"{row['value']!r} is not a whole land-cover value")
            continue
        v = int(value)
        if v in lines:
            problems.add(src, f"line {line}, column value", f"value {v} is already on line {lines[v]}")
            continue
        lines[v] = line
        if n is None or n <= 0:
            problems.add(src, f"line {line}, column manning_n", f"{row['manning_n']!r} is not a Manning's n > 0 "
                                                               "(s/m^(1/3))")
        else:
            n_of[v] = n
        if read_class and has_class:
            text = row.get("land_class", "")
            if not text.isdigit() or len(text) > 2 or (known and f"{int(text):02d}" not in known):
                problems.add(src, f"line {line}, column land_class",
                             f"{text!r} is not a land class of the infiltration table ({', '.join(sorted(known))})"
                             if known else f"{text!r} is not a two-digit land class (e.g. 20 built-up, 11 water)")
            else:
                class_of[v] = int(text)
    if codes is None:
        return None
    open_fine = np.isfinite(domain.dem.values)
    present = np.unique(codes[open_fine])
    unlisted = [int(v) for v in present if v != -1 and int(v) not in lines]
    if unlisted:
        problems.add(src, "column value", f"land-cover value(s) {', '.join(map(str, unlisted))} of "
                                          f"{opt.landcover} have no row; add them")
    uncovered = int((open_fine & (codes == -1)).sum())
    if uncovered:
        problems.add(str(opt.landcover), "values", f"{uncovered} valid DEM cells have no land-cover value "
                                                   "(nodata or outside the raster); cover the whole DEM")
    if unlisted or uncovered or len(n_of) < len(lines) or (read_class and len(class_of) < len(lines)):
        return None
    lut_n = np.full(int(max(max(lines), codes.max())) + 2, np.nan)
    for v, n in n_of.items():
        if v >= 0:
            lut_n[v] = n
    safe = np.where(codes >= 0, codes, lut_n.size - 1)
    n_fine = np.where(open_fine, lut_n[safe], np.nan)
    land_class = None
    if read_class:
        lut_c = np.full(lut_n.size, -1, dtype=np.int32)
        for v, c in class_of.items():
            if v >= 0:
                lut_c[v] = c
        land_class = domain.majority(np.where(open_fine, lut_c[safe], -1).astype(np.int32), -1)
    return LandCover(domain.mean(n_fine), land_class)


def read_buildings(path: Path, domain: Domain, problems: _Problems) -> np.ndarray | None:
    """Wall cells: blocks whose valid DEM cells are more than half covered by building polygons."""
    from rasterio.features import rasterize

    from twin.geo.vector import read_vector

    with problems.gather():
        frame = read_vector(path, dst_crs=domain.dem.crs)
        kinds = frame.geometry.geom_type
        bad = ~kinds.isin(["Polygon", "MultiPolygon"]) & frame.geometry.notna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            problems.add(path, f"feature {first}, geometry", f"{int(bad.sum())} feature(s) are not polygons "
                                                             f"(e.g. {kinds[bad].iloc[0]}); walls need footprints")
            return None
        shapes = [g for g in frame.geometry if g is not None and not g.is_empty]
        fine = np.zeros(domain.dem.shape, dtype=np.uint8)
        if shapes:
            fine = rasterize(((g, 1) for g in shapes), out_shape=domain.dem.shape, transform=domain.dem.transform,
                             fill=0, dtype="uint8")
        share = np.where(np.isfinite(domain.dem.values), fine.astype(np.float64), np.nan)
        return np.nan_to_num(domain.mean(share)) > 0.5
    return None


# ----------------------------------------------------------------------------- inflows


def read_inflows(path: Path, domain: Domain | None, problems: _Problems,
                 walls: np.ndarray | None) -> tuple[list[DischargeInflow | LevelBoundary], list[Path]]:
    """Discharge and level boundaries from point/line features with ``kind`` and ``hydrograph``."""
    from twin.geo.vector import read_vector

    src = str(path)
    hydro_paths: list[Path] = []
    items: list[DischargeInflow | LevelBoundary] = []
    frame = None
    with problems.gather():
        frame = read_vector(path, dst_crs=domain.dem.crs if domain is not None else None)
    if frame is None:
        return items, hydro_paths
    columns = set(frame.columns)
    for i, (_, feature) in enumerate(frame.iterrows(), start=1):
        label = feature["name"] if "name" in columns and isinstance(feature["name"], str) else ""
        where = f"feature {i}" + (f" ({label!r})" if label else "")
        kind = feature["kind"] if "kind" in columns else None
        hydro = feature["hydrograph"] if "hydrograph" in columns else None
        ok = True
        if not isinstance(kind, str) or not kind.strip():
            problems.add(src, f"{where}, property kind", "missing; set kind to 'discharge' (hydrograph in m3/s) "
                                                         "or 'level' (water level in m)")
            ok = False
        elif kind not in INFLOW_KINDS:
            problems.add(src, f"{where}, property kind", f"{kind!r} is not a kind of inflow; use 'discharge' "
                                                         "(m3/s) or 'level' (m)")
            ok = False
        if not isinstance(hydro, str) or not hydro.strip():
            problems.add(src, f"{where}, property hydrograph", "missing; give the path of a CSV with columns "
                                                               "time_s,value, relative to this file")
            ok = False
        else:
            hpath = (path.parent / hydro).resolve() if not Path(hydro).is_absolute() else Path(hydro)
            if not hpath.is_file():
                problems.add(src, f"{where}, property hydrograph", f"{hpath} not found; paths are relative to "
                                                                   f"{path.parent}")
                ok = False
            else:
                hydro_paths.append(hpath)
        geom = feature.geometry
        if geom is None or geom.is_empty or geom.geom_type not in ("Point", "MultiPoint", "LineString",
                                                                   "MultiLineString"):
            gtype = "no geometry" if geom is None or geom.is_empty else geom.geom_type
            problems.add(src, f"{where}, geometry", f"{gtype}; an inflow is a point or a line across the channel")
            ok = False
        series = read_hydrograph(hpath, kind, label or where, problems) if ok else None
        if series is None or domain is None:
            continue
        cells = _feature_cells(geom, domain)
        open_cells = cells[domain.valid[cells[:, 0], cells[:, 1]]] if cells.size else cells
        if walls is not None and open_cells.size:
            open_cells = open_cells[~walls[open_cells[:, 0], open_cells[:, 1]]]
        if cells.size == 0:
            problems.add(src, f"{where}, geometry", "lies outside the DEM grid; give coordinates inside it "
                                                    "(any CRS: features are reprojected to the DEM's)")
        elif open_cells.size == 0:
            problems.add(src, f"{where}, geometry", "touches only nodata or building cells; move it onto open "
                                                    "terrain")
        elif kind == "discharge":
            items.append(DischargeInflow(open_cells, series, name=label or where))
        else:
            items.append(LevelBoundary(open_cells, series, name=label or where))
    return items, hydro_paths


def _feature_cells(geom: Any, domain: Domain) -> np.ndarray:
    """(n, 2) row/col of the grid cells under a point or along a line (sampled every quarter cell)."""
    step = 0.25 * min(domain.cell_size_m)
    xs: list[float] = []
    ys: list[float] = []
    for part in getattr(geom, "geoms", [geom]):
        if part.geom_type == "Point":
            xs.append(part.x)
            ys.append(part.y)
            continue
        n = max(int(math.ceil(part.length / step)), 1)
        for d in np.linspace(0.0, part.length, n + 1):
            p = part.interpolate(d)
            xs.append(p.x)
            ys.append(p.y)
    rows, cols = domain.rowcol(np.array(xs), np.array(ys))
    inside = (rows >= 0) & (rows < domain.shape[0]) & (cols >= 0) & (cols < domain.shape[1])
    rc = np.stack([rows[inside], cols[inside]], axis=1).astype(np.int64)
    if rc.size == 0:
        return rc.reshape(0, 2)
    _, first = np.unique(rc, axis=0, return_index=True)
    return rc[np.sort(first)]


# ----------------------------------------------------------------------------- rain and initial water


def read_rain(opt: FloodOptions, domain: Domain | None, problems: _Problems) -> RainSeries | None:
    """Rain in mm/h, uniform or by zone (block majority of the zone raster)."""
    zones = None
    if opt.rain_zones is not None:
        if domain is None:
            return None
        fine = _on_dem(Path(opt.rain_zones), "rain_zones", domain, problems, categorical=True)
        if fine is None:
            return None
        codes = domain.majority(np.where(np.isfinite(domain.dem.values), fine, -1).astype(np.int32), -1)
        missing = int((domain.valid & (codes == -1)).sum())
        if missing:
            problems.add(opt.rain_zones, "values", f"{missing} cells of the DEM have no rain zone (nodata or "
                                                   "outside the raster); give every cell a zone (a zone with a "
                                                   "column of zeros for no rain)")
            return None
        zones = domain.grid(codes, nodata=-1, source=str(opt.rain_zones))
    with problems.gather():
        return read_rain_csv(opt.rain, zones=zones)  # type: ignore[arg-type]
    return None


def initial_depth(opt: FloodOptions, domain: Domain, problems: _Problems) -> np.ndarray | None:
    """Depth (m) at t = 0: level minus bed, or the raster (block mean, nodata = dry)."""
    if opt.initial_level_m is not None:
        return np.where(domain.valid, np.maximum(opt.initial_level_m - np.nan_to_num(domain.z_m), 0.0), 0.0)
    if opt.initial_depth is None:
        return None
    fine = _on_dem(Path(opt.initial_depth), "initial_depth", domain, problems, categorical=False)
    if fine is None:
        return None
    open_fine = np.isfinite(domain.dem.values)
    negative = int((open_fine & (fine < 0)).sum())
    if negative:
        problems.add(opt.initial_depth, "values", f"{negative} cells have a negative depth; depths are >= 0 m")
        return None
    depth = domain.mean(np.where(open_fine, np.nan_to_num(fine), np.nan))
    return np.where(domain.valid, np.nan_to_num(depth), 0.0)


# ----------------------------------------------------------------------------- the prepared run


@dataclass
class PreparedRun:
    """Everything the solver needs, checked; and what the results record about the inputs."""

    options: FloodOptions
    domain: Domain
    grid: FloodGrid
    rain: RainSeries | None
    infiltration: Infiltration | None
    boundaries: list[DischargeInflow | LevelBoundary]
    probes: list[Probe]
    initial_depth_m: np.ndarray | None
    inputs: dict[str, Any] = field(default_factory=dict)
    drainage: DrainageSink | None = None


def prepare(opt: FloodOptions) -> PreparedRun:
    """Read and check every input; one InputError listing all problems."""
    problems = _Problems()
    check_options(opt, problems)
    missing = {p.source for p in problems.items if p.message.startswith("file not found")}

    def usable(path: Path | None) -> bool:
        return path is not None and str(path) not in missing

    domain = load_domain(opt, problems) if usable(opt.dem) else None
    probes = read_probes(Path(opt.probes), problems) if usable(opt.probes) else []
    walls = None
    if domain is not None and usable(opt.buildings):
        walls = read_buildings(Path(opt.buildings), domain, problems)  # type: ignore[arg-type]
    no_walls = np.zeros(domain.shape, dtype=bool) if domain is not None else None
    boundaries: list[DischargeInflow | LevelBoundary] = []
    hydrographs: list[Path] = []
    if usable(opt.inflows):
        boundaries, hydrographs = read_inflows(Path(opt.inflows), domain, problems,  # type: ignore[arg-type]
                                               walls if walls is not None else no_walls)
    rain = None
    if usable(opt.rain) and (opt.rain_zones is None or usable(opt.rain_zones)):
        rain = read_rain(opt, domain, problems)
    elif opt.design_storm_years is not None and not problems.items:  # its flags' problems are listed already
        rain = design_rain(opt)
    cover = None
    if domain is not None and usable(opt.landcover) and usable(opt.landcover_table):
        cover = read_landcover(opt, domain, problems)
    depth0 = None
    if domain is not None and (opt.initial_level_m is not None or usable(opt.initial_depth)):
        depth0 = initial_depth(opt, domain, problems)
    if domain is not None and probes:
        place_probes(Path(opt.probes), probes, domain, walls if walls is not None else no_walls,  # type: ignore
                     problems)
    if domain is not None and walls is not None and not (domain.valid & ~walls).any():
        problems.add(opt.buildings, "", "buildings cover every cell of the DEM; nothing is left to flood")  # type: ignore
    problems.raise_if_any()
    assert domain is not None

    dx, dy = domain.cell_size_m
    n = cover.manning_n if cover is not None else (opt.manning_n or DEFAULT_MANNING_N)
    grid = FloodGrid(domain.z_m, dx, dy, manning_n=n, obstacles=walls)
    infiltration = None
    if opt.infiltration != "none" and cover is not None and cover.land_class is not None:
        classes = np.where(grid.active, cover.land_class, -1).astype(np.int16)
        infiltration = Infiltration(opt.infiltration, classes)
    drainage = None
    if opt.drainage_years is not None:
        drainage = drains_on(parse_storm_formula(opt.storm_formula or ""), opt.drainage_years,
                             opt.drain_duration_min, opt.runoff_coefficient,
                             cover.land_class if cover is not None else None, grid.active)
    inputs = _input_records(opt, hydrographs)
    return PreparedRun(opt, domain, grid, rain, infiltration, boundaries, probes, depth0, inputs, drainage)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _input_records(opt: FloodOptions, hydrographs: list[Path]) -> dict[str, Any]:
    """Path, size and SHA-256 of every input file, by role."""
    def record(path: Path) -> dict[str, Any]:
        path = Path(path)
        return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": _sha256(path)}

    roles = {"dem": opt.dem, "rain": opt.rain, "rain_zones": opt.rain_zones, "inflows": opt.inflows,
             "landcover": opt.landcover, "landcover_table": opt.landcover_table, "buildings": opt.buildings,
             "probes": opt.probes, "initial_depth": opt.initial_depth}
    out: dict[str, Any] = {role: record(p) for role, p in roles.items() if p is not None}
    if hydrographs:
        out["hydrographs"] = [record(p) for p in hydrographs]
    return out


# ----------------------------------------------------------------------------- running


class _NetSource:
    """Rain minus infiltration (m/s per cell) for the step about to be taken.

    The solver asks for the source at the step's mid time; infiltration needs
    the depth and the step length, so the rate is set just before each step.
    """

    def __init__(self, rain: RainSeries | None, infiltration: Infiltration) -> None:
        self.rain = rain
        self.infiltration = infiltration
        self._rate: np.ndarray | float = 0.0
        self._net: np.ndarray | None = None  # reused each step: a new grid-sized array a step costs page faults

    def prepare(self, depth_m: np.ndarray, t_s: float, dt_s: float) -> None:
        rain = self.rain.rate_m_per_s(t_s + 0.5 * dt_s) if self.rain is not None else np.zeros(())
        if self._net is None or self._net.shape != np.shape(depth_m):
            self._net = np.empty(np.shape(depth_m))
        self._rate = self.infiltration.net_rate_m_per_s(depth_m, dt_s, rain, out=self._net)

    def __call__(self, t_s: float) -> np.ndarray | float:
        return self._rate


def _schedule(duration_s: float, frame_every_s: float | None, report_every_s: float,
              breaks_s: np.ndarray | None = None) -> list[tuple[float, bool, bool]]:
    """(time s, write a frame, report) of every time the steps must land on, in order.

    ``breaks_s`` (rain rows) are landed on without a report, so that no step
    straddles a change of intensity and the rain added is the exact integral.
    """
    tol = 1e-9 * max(duration_s, 1.0)
    marks: dict[float, tuple[bool, bool]] = {}

    def add(t: float, frame: bool, report: bool) -> None:
        key = next((m for m in marks if abs(m - t) <= tol), t)
        old = marks.get(key, (False, False))
        marks[key] = (old[0] or frame, old[1] or report)

    for every, frame in ((frame_every_s, True), (report_every_s, False)):
        if every is not None:
            for k in range(1, int(math.floor(duration_s / every + 1e-9)) + 1):
                add(min(k * every, duration_s), frame, True)
    add(duration_s, False, True)
    for t in (breaks_s if breaks_s is not None else ()):
        if tol < t < duration_s - tol:
            add(float(t), False, False)
    return [(t, frame, report) for t, (frame, report) in sorted(marks.items())]


def _even_step(remaining_s: float, stable_s: float) -> float:
    """The stable step shortened so that equal steps reach the next report time (s).

    A step cut short to land on a report time, repeated at every report,
    pumps energy into grid-scale waves of the local inertial scheme where
    friction hardly damps them (ponded water): the depth of a still pool then
    grows a checkerboard within minutes.  Equal steps do not.
    """
    return remaining_s / math.ceil(remaining_s / stable_s - 1e-9)


def _frame_label(t_s: float, duration_s: float) -> str:
    """Seconds, zero-padded to the width of the duration so that frame files sort by time."""
    width = len(str(int(math.floor(duration_s))))
    if abs(t_s - round(t_s)) < 1e-6:
        return f"{int(round(t_s)):0{width}d}"
    return f"{t_s:0{width + 4}.3f}"


def rain_volume_m3(rain: RainSeries | None, open_cells: np.ndarray, t_s: float, cell_area_m2: float) -> float:
    """Rain fallen on the open cells from 0 to ``t_s`` (m3): the exact integral of the steps."""
    if rain is None:
        return 0.0
    depth_m = rain.depth_mm_between(0.0, t_s) / 1000.0
    if rain.cell_column is None:
        return float(depth_m[0]) * int(open_cells.sum()) * cell_area_m2
    counts = np.bincount(rain.cell_column[open_cells], minlength=rain.n_columns + 1)[:rain.n_columns]
    return float(depth_m @ counts) * cell_area_m2


def gross_volumes(b: MassBalance, rain_m3: float, infiltration: bool, drained_m3: float = 0.0) -> dict[str, float]:
    """Volumes in and out by kind (m3).

    With infiltration, the solver books the net of rain and infiltration per
    cell and step (a cell soaking up more than falls on it is a sink), so
    the sinks took what the rain lost on its way in: rain - net source in +
    net sink out; of that, ``drained_m3`` went down the drains (booked as a
    sink too), the rest into the soil.
    """
    lost_m3 = rain_m3 - b.source_in_m3 + b.sink_out_m3 if infiltration else b.sink_out_m3
    rain_in = rain_m3 if infiltration else b.source_in_m3
    volume_in = rain_in + b.inflow_m3 + b.level_in_m3 + b.clamp_added_m3
    volume_out = lost_m3 + b.edge_outflow_m3 + b.level_out_m3 + b.pumped_m3
    return {"rain_m3": rain_in, "infiltration_m3": lost_m3 - drained_m3, "drained_m3": drained_m3,
            "inflow_m3": b.inflow_m3, "level_in_m3": b.level_in_m3, "level_out_m3": b.level_out_m3,
            "edge_outflow_m3": b.edge_outflow_m3, "pumped_m3": b.pumped_m3,
            "clamp_added_m3": b.clamp_added_m3, "in_m3": volume_in, "out_m3": volume_out}


@dataclass
class FloodResult:
    """What a finished run reports (volumes m3, areas m2, depths m)."""

    out: Path
    duration_s: float
    steps: int
    cell_updates: int
    wall_time_s: float
    first_step_s: float
    balance: MassBalance
    volumes: dict[str, float]
    max_depth_m: float
    max_depth_xy: tuple[float, float]
    flooded_m2: dict[float, float]
    files: list[str]

    @property
    def cell_updates_per_s(self) -> float:
        """Solver speed after the first step, which also compiles the kernels on a first run."""
        if self.steps < 2:
            return self.cell_updates / max(self.wall_time_s, 1e-9)
        per_step = self.cell_updates / self.steps
        return per_step * (self.steps - 1) / max(self.wall_time_s - self.first_step_s, 1e-9)

    def summary_line(self) -> str:
        x, y = self.max_depth_xy
        areas = ", ".join(f"> {d:g} m {a / 1e6:.4f} km2" for d, a in self.flooded_m2.items())
        return (f"flood: {self.duration_s:g} s in {self.steps:,} steps; max depth {self.max_depth_m:.3f} m at "
                f"({x:.1f}, {y:.1f}); flooded {areas}; in {self.volumes['in_m3']:,.1f} m3, "
                f"out {self.volumes['out_m3']:,.1f} m3; mass error {self.balance.relative_error:.2e}; "
                f"{self.cell_updates_per_s:,.3g} cell updates/s; results in {self.out}")


def _balance_record(b: MassBalance) -> dict[str, float]:
    record = asdict(b)
    record.update(total_in_m3=b.total_in_m3, total_out_m3=b.total_out_m3, storage_change_m3=b.storage_change_m3,
                  error_m3=b.error_m3, relative_error=b.relative_error)
    return record


def versions() -> dict[str, str]:
    """Versions that can change the numbers of a run."""
    from importlib.metadata import PackageNotFoundError, version

    import twin

    found = {"twin": twin.__version__, "python": platform.python_version(), "platform": platform.platform()}
    for package in ("numpy", "numba", "rasterio", "pyproj", "shapely", "geopandas"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    try:
        import rasterio

        found["gdal"] = rasterio.__gdal_version__
    except ImportError:
        pass
    return found


def write_geotiff(path: Path, values: np.ndarray, transform: Affine, crs: Any) -> None:
    """float32 GeoTIFF, DEFLATE, NaN nodata, tiled when large; written under a temporary name and renamed."""
    import rasterio

    rows, cols = values.shape
    profile: dict[str, Any] = dict(driver="GTiff", dtype="float32", count=1, width=cols, height=rows,
                                   crs=crs, transform=transform, nodata=np.nan,
                                   compress="deflate", predictor=3)
    if rows >= _TILED_FROM and cols >= _TILED_FROM:
        profile.update(tiled=True, blockxsize=_TILE, blockysize=_TILE)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.tif")
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(values.astype(np.float32), 1)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def run(prep: PreparedRun, feedback: Feedback = NO_FEEDBACK) -> FloodResult:
    """Run the solver to the end, writing frames, maps, probes and the balance into ``--out``."""
    out = Path(prep.options.out)
    staging = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        result = _run_into(prep, staging, feedback)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _move_into_place(staging, out)
    return result


def _simulation(prep: PreparedRun) -> tuple[Simulation, Callable[[float], None]]:
    """The solver of a prepared run, and what must be done before each of its steps (given the step's length).

    Rain by zone and infiltration go to the solver as cell sources, applied in
    its own pass over the grid, where zones and land classes fit in a byte a
    cell; otherwise the net rate per cell is set before each step.  Drains
    take their share in the solver's step whenever the sources are applied.
    """
    grid, rain, infiltration = prep.grid, prep.rain, prep.infiltration
    cells, net, source = None, None, None
    if ZonedSources.pays(rain, infiltration):
        cells = ZonedSources(rain, infiltration, grid.shape)
    elif infiltration is not None:
        net = source = _NetSource(rain, infiltration)
    elif rain is not None:
        source = rain.rate_m_per_s
    sim = Simulation(grid, boundary=prep.options.boundary,
                     inflows=[b for b in prep.boundaries if isinstance(b, DischargeInflow)],
                     level_boundaries=[b for b in prep.boundaries if isinstance(b, LevelBoundary)],
                     source_rate=source, cell_sources=cells, initial_depth_m=prep.initial_depth_m,
                     arrival_depth_m=ARRIVAL_DEPTH_M, source_step_s=prep.options.source_step_s,
                     sink_store=infiltration.cumulative_m if net is not None else None,
                     drain_capacity_m_s=prep.drainage.capacity_m_per_s if prep.drainage is not None else None)
    if net is None:
        return sim, lambda dt_s: None
    return sim, lambda dt_s: net.prepare(sim.state.h, sim.t_s, dt_s)


def _run_into(prep: PreparedRun, folder: Path, feedback: Feedback) -> FloodResult:
    opt, domain, grid = prep.options, prep.domain, prep.grid
    sim, before_step = _simulation(prep)
    closed = ~grid.active

    def masked(values: np.ndarray) -> np.ndarray:
        return np.where(closed, np.nan, values).astype(np.float32)

    duration = opt.duration_s
    schedule = _schedule(duration, opt.frame_every_s, opt.report_interval_s,
                         prep.rain.time_s if prep.rain is not None else None)
    files: list[str] = []
    series: list[dict[str, float]] = []
    probe_rows = [_probe_row(0.0, sim, prep.probes, domain.z_m)]
    eps = 1e-9 * max(duration, 1.0)
    wall0 = time.perf_counter()
    first_step_s = 0.0
    for target, frame, report in schedule:
        while sim.t_s < target - eps:
            dt = _even_step(target - sim.t_s, sim.next_dt_s())
            before_step(dt)
            sim.step(dt, settle=sim.t_s + dt >= target - eps)
            if sim.steps == 1:
                first_step_s = time.perf_counter() - wall0
        if frame:
            name = f"depth_{_frame_label(target, duration)}.tif"
            write_geotiff(folder / name, masked(sim.state.h), domain.transform, domain.file_crs)
            files.append(name)
        if report:
            probe_rows.append(_probe_row(target, sim, prep.probes, domain.z_m))
            b = sim.balance
            series.append({"t_s": target, "storage_m3": b.storage_m3, "net_in_m3": b.total_in_m3,
                           "net_out_m3": b.total_out_m3, "error_m3": b.error_m3})
            feedback.progress(100.0 * target / duration, f"t = {target:g} s of {duration:g} s, {sim.steps:,} steps")
    wall = time.perf_counter() - wall0
    balance = sim.balance

    max_depth = masked(sim.max_depth)
    maps = {"max_depth.tif": max_depth,
            "max_speed.tif": masked(sim.max_speed),
            "arrival_time.tif": masked(sim.arrival_time_s)}
    for name, values in maps.items():
        write_geotiff(folder / name, values, domain.transform, domain.file_crs)
        files.append(name)
    if prep.probes:
        _write_probes(folder / "probes.csv", prep.probes, probe_rows)
        files.append("probes.csv")

    wet = np.nan_to_num(max_depth, nan=-1.0)
    where = np.unravel_index(int(np.argmax(wet)), wet.shape)
    flooded = {d: float((wet > d).sum()) * domain.cell_area_m2 for d in FLOOD_DEPTHS_M}
    rain_m3 = rain_volume_m3(prep.rain, grid.active, duration, domain.cell_area_m2)
    volumes = gross_volumes(balance, rain_m3, prep.infiltration is not None, sim.drained_m3)
    files.append("mass_balance.json")
    result = FloodResult(Path(opt.out), duration, sim.steps, sim.cell_updates, wall, first_step_s, balance,
                         volumes, float(max(wet.max(), 0.0)), domain.centre(int(where[0]), int(where[1])), flooded,
                         files)
    record = _run_record(prep, sim, result, series)
    with atomic_write(folder / "mass_balance.json") as fh:
        json.dump(record, fh, indent=1, allow_nan=False)
    return result


def _probe_row(t_s: float, sim: Simulation, probes: list[Probe], z_m: np.ndarray) -> list[float]:
    """Time, then water level (m, DEM datum) and depth (m) of each probe."""
    h = sim.state.h
    row = [t_s]
    for p in probes:
        depth = float(h[p.row, p.col])
        row += [float(z_m[p.row, p.col]) + depth, depth]
    return row


def _write_probes(path: Path, probes: list[Probe], rows: list[list[float]]) -> None:
    with atomic_write(path, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time_s"] + [f"{p.name}_{what}" for p in probes for what in ("level_m", "depth_m")])
        for row in rows:
            writer.writerow([f"{row[0]:g}"] + [f"{v:.6f}" for v in row[1:]])


def _run_record(prep: PreparedRun, sim: Simulation, result: FloodResult,
                series: list[dict[str, float]]) -> dict[str, Any]:
    """Everything ``mass_balance.json`` holds: volumes, cost, grid, solver settings, inputs, versions."""
    opt, domain = prep.options, prep.domain
    return {
        "format": "twin-flood-run/1",
        "duration_s": result.duration_s,
        "balance": _balance_record(result.balance),
        "volumes": result.volumes,
        "steps": result.steps,
        "cell_updates": result.cell_updates,
        "wall_time_s": result.wall_time_s,
        "first_step_s": result.first_step_s,
        "cell_updates_per_s": result.cell_updates_per_s,
        "max_depth_m": result.max_depth_m,
        "max_depth_xy": list(result.max_depth_xy),
        "flooded_area_m2": {f"over_{d:g}_m": a for d, a in result.flooded_m2.items()},
        "grid": {"crs": domain.dem.crs.to_wkt(), "transform": list(domain.transform)[:6], "rows": domain.shape[0],
                 "cols": domain.shape[1], "cell_size_m": list(domain.cell_size_m), "coarsen": domain.factor,
                 "open_cells": int(prep.grid.active.sum())},
        "solver": {"scheme": "local inertial (Bates et al. 2010)", "alpha": sim.alpha, "theta": sim.theta,
                   "max_dt_s": sim.max_dt_s, "h_min_m": sim.h_min_m, "arrival_depth_m": sim.arrival_depth_m,
                   "boundary": opt.boundary, "infiltration": opt.infiltration,
                   "manning_n": "per cell from --landcover-table" if opt.landcover else
                   (opt.manning_n or DEFAULT_MANNING_N)},
        "inputs": prep.inputs,
        "notes": [str(note) for note in (prep.rain.notes if prep.rain is not None else [])],
        "design_storm": prep.rain.meta if prep.rain is not None and prep.rain.source == "chicago_hyetograph"
        else None,
        "drainage": prep.drainage.design if prep.drainage is not None else None,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opt).items()},
        "command_line": opt.command_line,
        "versions": versions(),
        "threads": _threads(),
        "seed": None,
        "outputs": sorted(result.files),
        "series": series,
    }


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished staging folder to ``out`` (an empty ``out`` is replaced)."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    try:
        os.rename(staging, out)
    except OSError as exc:
        raise InputError(Problem(str(out), "--out", f"could not move the results into place ({exc}); they are "
                                                    f"complete in {staging}")) from None


def simulate(opt: FloodOptions, feedback: Feedback = NO_FEEDBACK) -> FloodResult:
    """Check every input, run, write the results into ``opt.out``."""
    return run(prepare(opt), feedback)
