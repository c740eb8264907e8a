"""Steps run in compiled loops (a constant source, no inflows) give the water of steps run one by one."""

from __future__ import annotations

import numpy as np
import pytest

from models.flood.hydraulics import FloodGrid, Simulation
from models.flood.kernel_choice import KernelChoice


def _pair(z: np.ndarray, n, h0: np.ndarray, rate: float, boundary) -> tuple[Simulation, Simulation]:
    """The same run twice: its source a function of time (step by step), and a number (compiled loops)."""
    grid = FloodGrid(z, 2.0, manning_n=n)
    by_step = Simulation(grid, initial_depth_m=h0, source_rate=lambda t: rate, boundary=boundary)
    quiet = Simulation(grid, initial_depth_m=h0, source_rate=rate, boundary=boundary)
    return by_step, quiet


def _same(a: Simulation, b: Simulation) -> None:
    for x, y in ((a.h, b.h), (a.qx, b.qx), (a.qy, b.qy), (a.max_depth, b.max_depth),
                 (a.max_speed, b.max_speed)):
        assert np.array_equal(x, y)
    assert np.array_equal(a.arrival_time_s, b.arrival_time_s, equal_nan=True)
    assert a.balance == b.balance
    assert (a.t_s, a.steps, a.cell_updates, a.last_dt_s) == (b.t_s, b.steps, b.cell_updates, b.last_dt_s)


@pytest.mark.parametrize("shape", [(60, 50), (300, 260)], ids=["one-thread", "threads"])
@pytest.mark.parametrize("rate", [1e-5, -2e-5, 0.0])
def test_compiled_runs_of_steps_give_the_same_bits(shape, rate):
    rng = np.random.default_rng(5)
    z = rng.uniform(0.0, 2.0, size=shape)
    n = rng.uniform(0.02, 0.05, size=shape)
    h0 = np.maximum(1.5 - z, 0.0) * (np.arange(shape[1]) < shape[1] // 2)
    by_step, quiet = _pair(z, n, h0, rate, {"east": "open"})
    reports: list[list[tuple[float, float]]] = [[], []]
    for sim, seen in zip((by_step, quiet), reports):
        sim.run_until(130.0, report_every_s=25.0,
                      on_report=lambda state, balance, seen=seen: seen.append((state.t_s, balance.storage_m3)))
    _same(by_step, quiet)
    assert reports[0] == reports[1] and len(reports[0]) == 6
    assert quiet.steps > 100  # several compiled runs (at most 256 steps each) between reports
    assert quiet.balance.relative_error < 1e-9


def test_a_quiet_run_may_stop_and_go_on_step_by_step():
    """A compiled run and single steps may follow one another (``step`` between two ``run_until``)."""
    z = np.random.default_rng(8).uniform(0.0, 1.0, size=(40, 30))
    by_step, quiet = _pair(z, 0.03, np.full(z.shape, 0.2), 3e-5, "closed")
    for sim in (by_step, quiet):
        sim.run_until(50.0)
        sim.step(sim.next_dt_s())
        sim.run_until(90.0)
    _same(by_step, quiet)
    storage_gain = quiet.balance.storage_m3 - quiet.balance.initial_storage_m3
    assert storage_gain == pytest.approx(3e-5 * 90.0 * z.size * 4.0, rel=1e-9)  # closed box: all the rain stays


def test_a_number_that_is_not_real_is_refused():
    grid = FloodGrid(np.zeros((8, 8)), 1.0)
    with pytest.raises(ValueError, match="source_rate must be a function of time or a number"):
        Simulation(grid, source_rate="1e-5")


def test_runs_of_steps_time_the_kernel_choice():
    """A run of steps counts its steps in the choice between threads and one thread, as steps one by one do."""
    choice = KernelChoice("threads", "serial")
    assert choice.pick() == "threads" and choice.steps_left() == 16
    choice.record("threads", 16 * 1e-3, steps=16)
    assert choice.pick() == "serial" and choice.steps_left() == 5  # the trial of the other way
    choice.record("serial", 2 * 1e-4, steps=2)
    assert choice.steps_left() == 3
    choice.record("serial", 3 * 1e-4, steps=3)
    assert choice.current == "serial" and choice.switches == 1  # ten times quicker: it takes over
