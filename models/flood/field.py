"""The flood hazard of a scenario, built from the city's own layers and stepped in equal sub-steps.

The city manifest names the terrain, the rain (and its zones), the river
inflows, the land cover and the buildings; they are read and checked by the
same code as ``twin flood simulate`` (:func:`models.flood.simulate.prepare`),
so a scenario and the headless command see the same water.  Surface sinks
(infiltration by land class, storm drains sized by a design return period)
are evaluated once per response step from the depth at its start; the solver
caps them at the water available in a cell, and the balance books what it
really took.  Pumps withdraw after every hydraulic sub-step, at most what
their footprint holds (:meth:`FloodField.withdraw`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.flood.hydraulics import MassBalance, Simulation
from models.flood.simulate import FloodOptions, PreparedRun, prepare
from models.flood.sources import (
    STORM_FORMULAS,
    DrainageSink,
    Infiltration,
    StormFormula,
    SurfaceSinks,
)
from twin.errors import InputError, Problem

#: Manning's n of the HiPIMS Carlisle sample (one value for the whole domain), s/m^(1/3).
DEFAULT_MANNING_N = 0.035


@dataclass(frozen=True)
class DrainageDesign:
    """Storm drains sized by the rational method: capacity = runoff coefficient x i(P, duration)."""

    formula: StormFormula | None
    return_period_years: float
    duration_min: float = 10.0
    runoff_coefficient: float = 0.6


def city_flood_options(city: Any, *, coarsen: int, duration_s: float, manning_n: float,
                       infiltration: str, out: Path) -> FloodOptions:
    """``twin flood simulate`` options pointing at the city's layers (DEM, rain, inflows, buildings)."""
    manifest = city.manifest

    def path_of(role: str) -> Path | None:
        specs = manifest.layers_with_role(role)
        return manifest.source_path(specs[0]) if specs else None

    dem = path_of("dem")
    if dem is None:
        raise InputError(Problem(str(manifest.folder / "city.toml"), "layers",
                                 "the city has no layer with role 'dem'; a flood scenario needs terrain"))
    rain = path_of("rain")
    return FloodOptions(
        dem=dem, duration_s=duration_s, out=out, rain=rain,
        rain_zones=path_of("rain_zones") if rain is not None else None,
        inflows=path_of("inflows"), manning_n=manning_n, infiltration="none",
        buildings=path_of("buildings") if path_of("buildings") and _is_polygon_file(path_of("buildings")) else None,
        boundary="open", coarsen=coarsen)


def _is_polygon_file(path: Path | None) -> bool:
    """Buildings given as a vector file (OSM buildings come from the City instead)."""
    return path is not None and path.suffix.lower() in (".gpkg", ".geojson", ".json", ".shp")


def land_classes_on(prep: PreparedRun, city: Any) -> np.ndarray | None:
    """Land class (an integer such as 20) per simulation cell from the city's land cover, or None.

    The land-cover layer's class table maps raster values to land classes
    (columns ``value`` and ``land_class``); blocks take the majority class.
    """
    cover = city.landcover
    specs = city.manifest.layers_with_role("landcover")
    if cover is None or not specs or not specs[0].classes:
        return None
    import pandas as pd

    table = pd.read_csv(city.manifest.folder / specs[0].classes)
    if not {"value", "land_class"} <= set(table.columns) or cover.values.shape != prep.domain.dem.shape:
        return None
    fine = np.full(cover.values.shape, -1, dtype=np.int32)
    for value, land_class in zip(table["value"], table["land_class"]):
        fine[cover.values == value] = int(land_class)
    fine[~np.isfinite(prep.domain.dem.values)] = -1
    return prep.domain.majority(fine, -1)


def drainage_sink(design: DrainageDesign, land_class: np.ndarray | None, active: np.ndarray) -> DrainageSink | None:
    """Drain capacity on built-up and transport cells (all open cells without land classes)."""
    if design.formula is None or design.return_period_years <= 0:
        return None
    classes = land_class if land_class is not None else np.where(active, 20, -1)
    return DrainageSink.from_design_storm(design.formula, return_period_years=design.return_period_years,
                                          duration_min=design.duration_min,
                                          runoff_coefficient=design.runoff_coefficient,
                                          class_per_cell=np.where(active, classes, -1))


def storm_formula(name: str) -> StormFormula | None:
    """A published storm intensity formula by name, or None for ``"none"``."""
    if name == "none":
        return None
    return STORM_FORMULAS[name]


@dataclass
class FloodField:
    """The water on the city: solver, sources and sinks, stepped by the response model."""

    prep: PreparedRun | None
    """The city's inputs as read (None for a bare solver in tests)."""
    sinks: SurfaceSinks
    sim: Simulation
    pumped_m3: float = 0.0
    _rate: np.ndarray | float = field(default=0.0, repr=False)

    @classmethod
    def build(cls, city: Any, *, coarsen: int, duration_s: float, manning_n: float = DEFAULT_MANNING_N,
              infiltration: str = "none", drainage: DrainageDesign | None = None) -> FloodField:
        """Read the city's flood inputs onto a grid ``coarsen`` times the DEM's cell and set up the solver."""
        opt = city_flood_options(city, coarsen=coarsen, duration_s=duration_s, manning_n=manning_n,
                                 infiltration=infiltration, out=Path("unused"))
        prep = prepare(opt)
        classes = land_classes_on(prep, city) if (infiltration != "none" or drainage is not None) else None
        infil = None
        if infiltration != "none" and classes is not None:
            infil = Infiltration(infiltration, np.where(prep.grid.active, classes, -1).astype(np.int16))
        drains = drainage_sink(drainage, classes, prep.grid.active) if drainage is not None else None
        sinks = SurfaceSinks(infil, drains)
        own = cls(prep, sinks, sim=None)  # type: ignore[arg-type]
        own.sim = Simulation(prep.grid, boundary=opt.boundary, inflows=[b for b in prep.boundaries
                                                                        if b.__class__.__name__ == "DischargeInflow"],
                             level_boundaries=[b for b in prep.boundaries
                                               if b.__class__.__name__ == "LevelBoundary"],
                             source_rate=own._source, initial_depth_m=prep.initial_depth_m)
        return own

    # ---- geometry --------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        return self.sim.grid.shape

    @property
    def cell_area_m2(self) -> float:
        return self.sim.grid.cell_area_m2

    def cells_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat index of the open cell nearest to each point (an obstacle or outside: the nearest open one)."""
        rows, cols = self.prep.domain.rowcol(np.asarray(x, float), np.asarray(y, float))
        r = np.clip(np.asarray(rows), 0, self.shape[0] - 1)
        c = np.clip(np.asarray(cols), 0, self.shape[1] - 1)
        nearest_r, nearest_c = self._nearest_open
        return (nearest_r[r, c] * self.shape[1] + nearest_c[r, c]).astype(np.int64)

    @property
    def _nearest_open(self) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "_near"):
            from scipy.ndimage import distance_transform_edt

            _, (rr, cc) = distance_transform_edt(~self.prep.grid.active, return_indices=True)
            self._near = (rr, cc)
        return self._near

    def cell_xy(self, flat: np.ndarray) -> np.ndarray:
        """(n, 2) centres of cells given by flat index."""
        r, c = np.divmod(np.asarray(flat, dtype=np.int64), self.shape[1])
        x, y = self.prep.domain.transform @ (c + 0.5, r + 0.5)
        return np.column_stack([x, y])

    # ---- stepping --------------------------------------------------------------------

    def _source(self, t_s: float) -> np.ndarray | float:
        return self._rate

    def _set_sources(self, t_s: float, dt_s: float) -> None:
        series = self.prep.rain if self.prep is not None else None
        rain = series.rate_m_per_s(t_s + 0.5 * dt_s) if series is not None else np.zeros(())
        if self.sinks.infiltration is None and self.sinks.drainage is None:
            self._rate = rain if np.ndim(rain) else float(rain)
            return
        self._rate = rain - self.sinks.sink_m_per_s(self.sim.h, dt_s, rain)

    def advance(self, dt_total_s: float, pumps: list[tuple[np.ndarray, float]]) -> np.ndarray:
        """Step the water ``dt_total_s`` seconds in equal stable sub-steps; returns the volume each pump took (m3).

        ``pumps``: (footprint cells, rate m3/s) of each pump running now.
        """
        end = self.sim.t_s + dt_total_s
        self._set_sources(self.sim.t_s, dt_total_s)
        pumped = np.zeros(len(pumps))
        eps = 1e-9 * max(end, 1.0)
        while self.sim.t_s < end - eps:
            remaining = end - self.sim.t_s
            dt = remaining / math.ceil(remaining / self.sim.next_dt_s() - 1e-9)
            self.sim.step(dt)
            for i, (cells, rate) in enumerate(pumps):
                pumped[i] += self.withdraw(cells, rate * dt)
        self.sim.t_s = end
        return pumped

    def withdraw(self, cells: np.ndarray, volume_m3: float) -> float:
        """Take up to ``volume_m3`` from ``cells`` (in proportion to their depth); returns what was taken.

        A pump cannot take more than is there: the volume is capped at the water
        the cells hold.  It leaves the domain, booked as a sink in the balance.
        """
        flat = self.sim.h.reshape(-1)
        depth = flat[cells]
        held = float(depth.sum()) * self.cell_area_m2
        if held <= 0.0 or volume_m3 <= 0.0:
            return 0.0
        taken = min(volume_m3, held)
        flat[cells] = depth * (1.0 - taken / held)
        self.sim._totals["sink_out"] += taken
        self.pumped_m3 += taken
        return taken

    @property
    def balance(self) -> MassBalance:
        return self.sim.balance
