"""The flood hazard of a scenario, built from the city's own layers and stepped in equal sub-steps.

The city manifest names the terrain, the rain (and its zones), the river
inflows, the land cover and the buildings; they are read and checked by the
same code as ``twin flood simulate`` (:func:`models.flood.simulate.prepare`),
so a scenario and the headless command see the same water.  Infiltration by
land class goes to the solver's step with the rain where it fits (else it is
evaluated once per response step from the depth at its start; the solver caps
it at the water available in a cell, and the balance books what it really
took).  Storm drains sized by a design return period take the standing water,
up to their capacity, whenever the solver applies the sources.  Pumps withdraw
after every hydraulic sub-step, at most what their footprint holds
(:meth:`Simulation.withdraw`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.flood.boundaries import DischargeInflow, LevelBoundary
from models.flood.hydraulics import MassBalance, Simulation
from models.flood.simulate import FloodOptions, PreparedRun, drains_on, prepare
from models.flood.sources import (
    STORM_FORMULAS,
    DrainageSink,
    Infiltration,
    StormFormula,
    SurfaceSinks,
    ZonedSources,
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


@dataclass(frozen=True)
class DesignStorm:
    """A Chicago design storm from a named storm intensity formula, in place of the city's rain series."""

    formula: str
    return_period_years: float
    duration_s: float
    peak_ratio: float = 0.4

    def options(self) -> dict[str, Any]:
        """The matching fields of :class:`FloodOptions`."""
        return {"storm_formula": self.formula, "design_storm_years": self.return_period_years,
                "storm_duration_s": self.duration_s, "peak_ratio": self.peak_ratio}


def city_flood_options(city: Any, *, coarsen: int, duration_s: float, manning_n: float,
                       design_storm: DesignStorm | None = None) -> FloodOptions:
    """``twin flood simulate`` options pointing at the city's layers (DEM, rain, inflows, buildings); the
    design storm's rain, where one is given, in place of the city's rain layer."""
    manifest = city.manifest

    def path_of(role: str) -> Path | None:
        specs = manifest.layers_with_role(role)
        return manifest.source_path(specs[0]) if specs else None

    dem = path_of("dem")
    if dem is None:
        raise InputError(Problem(str(manifest.folder / "city.toml"), "layers",
                                 "the city has no layer with role 'dem'; a flood scenario needs terrain"))
    rain, buildings = (path_of("rain") if design_storm is None else None), path_of("buildings")
    return FloodOptions(
        dem=dem, duration_s=duration_s, out=Path("unused"), rain=rain,
        rain_zones=path_of("rain_zones") if rain is not None else None,
        inflows=path_of("inflows"), manning_n=manning_n,
        buildings=buildings if _is_polygon_file(buildings) else None, boundary="open", coarsen=coarsen,
        **(design_storm.options() if design_storm is not None else {}))


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
    return drains_on(design.formula, design.return_period_years, design.duration_min, design.runoff_coefficient,
                     land_class, active)


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
              infiltration: str = "none", drainage: DrainageDesign | None = None,
              design_storm: DesignStorm | None = None) -> FloodField:
        """Read the city's flood inputs onto a grid ``coarsen`` times the DEM's cell and set up the solver."""
        opt = city_flood_options(city, coarsen=coarsen, duration_s=duration_s, manning_n=manning_n,
                                 design_storm=design_storm)
        prep = prepare(opt)
        classes = land_classes_on(prep, city) if (infiltration != "none" or drainage is not None) else None
        infil = None
        if infiltration != "none" and classes is not None:
            infil = Infiltration(infiltration, np.where(prep.grid.active, classes, -1).astype(np.int16))
        drains = drainage_sink(drainage, classes, prep.grid.active) if drainage is not None else None
        # The solver's step itself applies rain and infiltration, every ``source_step_s``, and the drains then.
        in_step = ZonedSources.pays(prep.rain, infil)
        sim = Simulation(prep.grid, boundary=opt.boundary,
                         inflows=[b for b in prep.boundaries if isinstance(b, DischargeInflow)],
                         level_boundaries=[b for b in prep.boundaries if isinstance(b, LevelBoundary)],
                         initial_depth_m=prep.initial_depth_m,
                         cell_sources=ZonedSources(prep.rain, infil, prep.grid.shape) if in_step else None,
                         source_step_s=opt.source_step_s,
                         # the soil takes what the sink takes: its store gives back what the cap keeps out
                         sink_store=infil.cumulative_m if infil is not None and not in_step else None,
                         drain_capacity_m_s=drains.capacity_m_per_s if drains is not None else None)
        return cls(prep, SurfaceSinks(infil), sim)

    def __post_init__(self) -> None:
        if self.sim.cell_sources is None:
            self.sim.source_rate = self._source

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

    @functools.cached_property
    def _nearest_open(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the nearest open cell, for every cell (computed once)."""
        from scipy.ndimage import distance_transform_edt

        _, (rr, cc) = distance_transform_edt(~self.sim.grid.active, return_indices=True)
        return rr, cc

    # ---- stepping --------------------------------------------------------------------

    def _source(self, t_s: float) -> np.ndarray | float:
        return self._rate

    def _set_sources(self, t_s: float, dt_s: float) -> None:
        if self.sim.cell_sources is not None:  # the step applies them
            return
        series = self.prep.rain if self.prep is not None else None
        rain = series.mean_rate_m_per_s(t_s, t_s + dt_s) if series is not None else np.zeros(())
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
            dt = self.sim.step_towards(end)
            for i, (cells, rate) in enumerate(pumps):
                pumped[i] += self.sim.withdraw(cells, rate * dt)
        self.sim.t_s = end
        self.pumped_m3 += float(pumped.sum())
        return pumped

    @property
    def balance(self) -> MassBalance:
        return self.sim.balance
