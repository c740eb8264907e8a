"""Rain and infiltration applied every ``source_step_s`` of simulated time instead of every hydraulic step."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from models.flood.hydraulics import FloodGrid, Simulation
from models.flood.simulate import rain_volume_m3
from models.flood.sources import Infiltration, RainSeries, ZonedSources, load_infiltration_table, uniform_rain


def _zoned_case(source_step_s: float, *, soils: bool = True, scale: float = 4.0
                ) -> tuple[Simulation, RainSeries, FloodGrid]:
    """A bumpy closed grid, six rain zones whose rates (up to 60 mm/h times ``scale``) change at 60, 150 and
    240 s, Green-Ampt soils (or none)."""
    rng = np.random.default_rng(8)
    z = rng.uniform(0.0, 0.5, (90, 70))
    z[:, :6] = np.nan
    grid = FloodGrid(z, 5.0, manning_n=0.03)
    zone_of_cell = (np.arange(70)[None, :] // 25 + 3 * (np.arange(90)[:, None] // 45)).astype(np.int32)
    zone_of_cell[~grid.active] = 6
    rain = RainSeries(np.array([0.0, 60.0, 150.0, 240.0]),
                      scale * np.array([[12.0, 0.0, 3.0, 40.0, 7.0, 0.0], [0.0, 25.0, 9.0, 0.0, 60.0, 2.0],
                                        [5.0, 5.0, 5.0, 5.0, 5.0, 5.0], [0.0] * 6]),
                      tuple("abcdef"), np.arange(6), zone_of_cell)
    classes = np.where(rng.uniform(size=z.shape) < 0.7, "01", "10")
    soil = Infiltration("green_ampt", np.where(grid.active, classes, "-1"), load_infiltration_table()) if soils else None
    sim = Simulation(grid, boundary="closed", cell_sources=ZonedSources(rain, soil, grid.shape),
                     source_step_s=source_step_s)
    return sim, rain, grid


def test_zoned_rain_in_the_step_books_the_rain_that_fell():
    """Rain by zone applied in the step (no soil): steps landing on the rain's rows book its exact integral."""
    sim, rain, grid = _zoned_case(0.0, soils=False, scale=1.0)
    for t in (60.0, 150.0, 240.0, 300.0):
        sim.run_until(t)
    expected = rain_volume_m3(rain, grid.active, 300.0, grid.cell_area_m2)
    assert sim.balance.source_in_m3 == pytest.approx(expected, rel=1e-12)
    assert abs(sim.storage_m3() - expected) <= 1e-9 * expected and sim.balance.relative_error < 1e-12


@pytest.mark.parametrize("source_step_s", [0.0, 7.0, 45.0])
def test_every_report_holds_the_series_exact_rain_and_the_balance_closes(source_step_s):
    """At each report time the rain added is the series' exact integral to then, whatever the source step.

    7 s and 45 s do not divide the series' times (60, 150, 240 s) nor the
    reports (every 50 s): intervals that straddle a change of rate take its
    mean, and the step landing on a report applies what is due.
    """
    sim, rain, grid = _zoned_case(source_step_s)
    soil_m = sim.cell_sources.infiltration.cumulative_m
    seen = []

    def report(state, balance):
        expected = rain_volume_m3(rain, grid.active, state.t_s, grid.cell_area_m2)
        soaked = float(soil_m.sum()) * grid.cell_area_m2
        # the clamp's water: what keeps depths >= 0 where a cell's outflow overshoots (booked in the balance)
        assert balance.storage_m3 + soaked - balance.clamp_added_m3 == pytest.approx(expected, rel=1e-12), state.t_s
        assert soaked > 0.1 * expected  # the soils took a real share
        assert abs(balance.relative_error) < 1e-12
        seen.append(state.t_s)

    sim.run_until(300.0, report_every_s=50.0, on_report=report)
    assert seen == [50.0, 100.0, 150.0, 200.0, 250.0, 300.0]


def test_sources_are_applied_once_every_source_step():
    """Between source steps a step adds no rain; the step that reaches ``source_step_s`` adds all of it."""
    sim, rain, grid = _zoned_case(10.0)
    soil_m = sim.cell_sources.infiltration.cumulative_m

    def rained() -> float:
        return sim.storage_m3() + float(soil_m.sum()) * grid.cell_area_m2 - sim.balance.clamp_added_m3

    added_at = []
    while sim.t_s < 100.0 - 1e-9:
        before = rained()
        sim.step(min(sim.next_dt_s(), 1.3))
        if rained() > before * (1 + 1e-9):
            added_at.append(sim.t_s)
        else:
            assert rained() == pytest.approx(before, rel=1e-12)
    assert len(added_at) >= 9
    gaps = np.diff([0.0, *added_at])
    assert gaps.min() >= 10.0 - 1e-9 and gaps.max() < 10.0 + 1.3
    expected = rain_volume_m3(rain, grid.active, added_at[-1], grid.cell_area_m2)
    assert rained() == pytest.approx(expected, rel=1e-12)


def _green_ampt_root(f0: float, ks: float, suction: float, t_s: float) -> float:
    """Cumulative infiltration F(t) of a soil ponded from t = 0 at F0: F - F0 - S ln((F + S)/(F0 + S)) = Ks t."""
    def residual(f: float) -> float:
        return f - f0 - suction * math.log((f + suction) / (f0 + suction)) - ks * t_s
    return brentq(residual, f0, f0 + ks * t_s * (1.0 + suction / f0) + 1e-12, xtol=1e-16, rtol=1e-15)


@pytest.mark.parametrize("source_step_s", [0.0, 2.0, 9.5])
def test_ponded_flat_box_infiltrates_as_green_ampt_solves_it(source_step_s):
    """Standing water on a flat closed box: no face carries any, and each cell's soil takes water as the
    implicit Green-Ampt solution says, to round-off, for any source step: the soil's take is solved exactly
    over whatever time it is applied."""
    grid = FloodGrid(np.zeros((24, 40)), 5.0, manning_n=0.03)
    soil = Infiltration("green_ampt", np.full(grid.shape, "01"), load_infiltration_table())
    f0 = 0.01
    soil.cumulative_m[...] = f0
    ks, suction = float(soil._p1[soil._class_flat[0]]), float(soil._p2[soil._class_flat[0]])
    rain_mm_h, h0 = 30.0, 0.05
    sim = Simulation(grid, boundary="closed", initial_depth_m=h0,
                     cell_sources=ZonedSources(uniform_rain(rain_mm_h), soil, grid.shape),
                     source_step_s=source_step_s)
    sim.run_until(900.0, report_every_s=60.0)
    f_end = _green_ampt_root(f0, ks, suction, 900.0)
    np.testing.assert_allclose(soil.cumulative_m, f_end, rtol=1e-12)
    np.testing.assert_allclose(sim.h, h0 + rain_mm_h / 3.6e6 * 900.0 - (f_end - f0), rtol=1e-11)
    assert np.all(sim.qx == 0.0) and np.all(sim.qy == 0.0)
    assert abs(sim.balance.relative_error) < 1e-12


def test_a_source_step_of_seconds_moves_the_water_as_every_step_does():
    """On bumpy ground under up to 240 mm/h by zone, with soils, sources every 7 s (about two steps) change
    maximum depths by under half a millimetre on average against sources at every step, and the water held
    by under 1 %: water that runs off between source steps escapes the soil for that while."""
    runs = {}
    for step in (0.0, 7.0):
        sim, _, grid = _zoned_case(step)
        sim.run_until(300.0, report_every_s=60.0)
        runs[step] = sim
    every, sub = runs[0.0], runs[7.0]
    assert every.last_dt_s > 3.0  # so that 7 s is about every second step
    wet = every.max_depth > 0.005
    assert wet.sum() > 400
    assert np.abs(sub.max_depth - every.max_depth)[wet].mean() < 5e-4
    assert sub.storage_m3() == pytest.approx(every.storage_m3(), rel=1e-2)
    assert sub.storage_m3() != every.storage_m3()  # a different schedule, not the same run


def test_source_step_must_be_a_time():
    grid = FloodGrid(np.zeros((4, 4)), 5.0)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="source_step_s"):
            Simulation(grid, source_step_s=bad)
