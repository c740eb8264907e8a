"""Compiled runs of steps on a team of threads (``quiet_steps.run_team_steps``): the bits of one thread, and an
end even when the system runs the team on fewer threads than it has bands."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

from models.flood.atomics import compare_exchange, fetch_add, load_acquire, store_release
from models.flood.hydraulics import FloodGrid, Simulation

ROOT = Path(__file__).resolve().parents[1]
two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads")


@numba.njit(parallel=True)
def _count_together(words, turns):
    for w in numba.prange(2):
        for _ in range(turns):
            fetch_add(words, 0, 1)


@numba.njit
def _one_of_each(words):
    before = fetch_add(words, 3, 5)
    swapped = compare_exchange(words, 3, 5, 9)
    refused = not compare_exchange(words, 3, 5, 11)
    store_release(words, 8, -4)
    return before, swapped, refused, load_acquire(words, 8)


def test_atomic_words():
    words = np.zeros(16, dtype=np.int64)
    assert _one_of_each(words) == (0, True, True, -4)
    assert words[3] == 9 and words[8] == -4
    _count_together(words, 200_000)  # no increment lost between threads
    assert words[0] == 400_000


def _storm_grid() -> tuple[FloodGrid, np.ndarray]:
    rng = np.random.default_rng(11)
    z = rng.uniform(0.0, 2.0, size=(300, 260)) + np.linspace(0.0, 3.0, 260)[None, :]
    h0 = np.maximum(2.0 - z, 0.0)
    return FloodGrid(z, 2.0, manning_n=rng.uniform(0.02, 0.05, size=z.shape)), h0


def _state(sim: Simulation) -> tuple:
    return (sim.h.copy(), sim.qx.copy(), sim.qy.copy(), sim.max_depth.copy(), sim.max_speed.copy(),
            np.nan_to_num(sim.arrival_time_s, nan=-1.0), sim.balance, sim.t_s, sim.steps, sim.last_dt_s)


def _same(a: tuple, b: tuple) -> None:
    for x, y in zip(a[:6], b[:6]):
        assert np.array_equal(x, y)
    assert a[6:] == b[6:]


@two_threads
@pytest.mark.parametrize("rate, theta", [(2e-5, 0.8), (-1e-5, 0.8), (2e-5, 1.0)], ids=["rain", "sink", "upwind"])
def test_a_team_gives_the_bits_of_one_thread(rate, theta):
    grid, h0 = _storm_grid()
    runs = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            sim = Simulation(grid, initial_depth_m=h0, source_rate=rate, theta=theta, boundary={"east": "open"})
            sim.run_until(200.0, report_every_s=70.0)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        runs.append(sim)
    one, team = runs
    assert one._team is None and team._team is not None  # the serial way, and the team
    assert team.steps > 200
    _same(_state(one), _state(team))
    assert team.balance.relative_error < 1e-9


_FEWER_THREADS = textwrap.dedent("""
    import numba, numpy as np
    from models.flood.hydraulics import FloodGrid, Simulation
    rng = np.random.default_rng(2)
    z = rng.uniform(0.0, 1.0, size=(240, 200))
    grid = FloodGrid(z, 2.0, manning_n=0.03)
    both = Simulation(grid, initial_depth_m=np.full(z.shape, 0.3), source_rate=1e-5)
    alone = Simulation(grid, initial_depth_m=np.full(z.shape, 0.3), source_rate=1e-5)
    both.run_until(60.0)
    numba.set_num_threads(1)  # the layouts have two bands; the team now gets one thread
    alone.run_until(60.0)
    assert alone._team is not None and alone.steps == both.steps > 50
    assert np.array_equal(alone.h, both.h) and np.array_equal(alone.max_speed, both.max_speed)
    print("ended", alone.steps)
""")


@two_threads
def test_a_team_on_fewer_threads_than_bands_ends(tmp_path):
    """One thread runs every band in turn (a spin wait for a band nobody runs would never end: hence a process
    of its own, with a time limit).  With an empty compiled cache, so that the team's code is compiled first, as
    in a new install whose first run is on threads."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", _FEWER_THREADS], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ended")
