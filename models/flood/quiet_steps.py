"""Many flood steps in one compiled call, where nothing between two steps needs Python.

A step of a small grid is quick: 200 x 200 cells take about 75 µs on two
cores, and the Python around each step (the step length, the source, the
balance, the call into the kernel with its 47 arguments) adds another 8-10
µs.  Where the source is a constant uniform rate (or none) and no inflow or
held level needs its cells set between steps, :func:`run_quiet_steps` runs
the steps to a target time itself: the same step lengths, the same choice of
pass 1's way, the same kernel and the same sums in the same order as
``Simulation.step_towards`` called in a loop, so the results are the same to
the bit (``tests/test_flood_quiet_steps.py``).

It stops after ``max_steps`` steps, so that the caller can time the steps it
ran (``kernel_choice``) and be interrupted, or at a non-finite depth.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from models.flood.atomics import compare_exchange, fetch_add, load_acquire, spin_pause, store_release, yield_thread
from models.flood.hydraulics import (
    _JIT,
    _JIT_ROWS,
    _TILES_BELOW,
    _TILES_EVERY,
    G_MPS2,
    _band,
    _band_seams,
    _save_old_seam,
    _step_serial,
)

#: ``run_quiet_steps``'s result: what it changed besides the arrays.
T_S, STEPS, H_MAX, NOW, TILES, FINITE, LAST_DT = range(7)


@njit(**_JIT_ROWS)
def _deep_cells(h, h_min):
    """Cells deeper than ``h_min`` (``Simulation._on_tiles``'s count).  No array made (no ``ravel``): the team's
    planner runs without reference counts."""
    n = 0
    for r in range(h.shape[0]):
        for c in range(h.shape[1]):
            n += h[r, c] > h_min
    return n


@njit(inline="always", **_JIT)
def _book(totals, rate, n_active, dt, area, capped, clamped, edge):
    """A step's volumes (m3) added to ``totals`` as ``Simulation._book`` adds them: the source's in and out from
    the rate on the active cells, the capped demand, clamping and edge outflow from the step's sums."""
    gains = n_active * max(rate, 0.0) * dt
    wants = n_active * max(-rate, 0.0) * dt
    totals[0] += gains * area
    totals[1] += (wants - capped) * area
    totals[2] += capped * area
    totals[3] += clamped * area
    totals[4] += edge * dt


@njit(**_JIT)
def run_quiet_steps(bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts,
                    span, seam_old, seam, f, limited, active, no_src, rate, cells, sink_store, no_drains, dx, dy,
                    h_min, theta, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx, rows64,
                    flow, runs, masks, totals, t_s, target_s, eps, max_steps, steps, alpha, min_d, max_dt, h_max, now,
                    tiles, n_active, area):
    """Steps of ``Simulation.step_towards(target_s)`` until ``t_s`` is within ``eps`` of ``target_s``, or
    ``max_steps`` of them; the source is ``rate`` (m/s) on every active cell.

    On the calling thread (``_step_serial``; threads: ``run_team_steps``).
    ``totals`` (m3): source in, sink out, sink capped, clamp added, edge
    outflow, added to as ``Simulation._book`` does.
    Returns (t_s, steps, h_max, now, tiles, finite, last dt) after the last step.
    """
    done = 0
    finite = True
    dt = math.nan
    has_sinks = rate < 0.0
    while t_s < target_s - eps and done < max_steps:
        remaining = target_s - t_s
        stable = max_dt
        if h_max > 0:
            stable = min(stable, alpha * min_d / math.sqrt(G_MPS2 * h_max))
        n = max(1, math.ceil(remaining / stable - 1e-9))
        dt = remaining / n
        t1 = t_s + dt
        if steps % _TILES_EVERY == 0:
            tiles = _deep_cells(h, h_min) < _TILES_BELOW * max(n_active, 1)
        _, _, capped, clamped, edge, _, h_max, finite = _step_serial(
            bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
            seam, f, limited, active, no_src, rate, False, cells, has_sinks, sink_store, no_drains, dt, dt, dx, dy,
            h_min, theta, t1, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx, rows64,
            flow, now, tiles, masks, runs)
        now = 1 - now
        if not finite:
            break
        _book(totals, rate, n_active, dt, area, capped, clamped, edge)
        t_s = t1
        steps += 1
        done += 1
    return t_s, steps, h_max, now, tiles, finite, dt


# --------------------------------------------------------------------------------------
# The same steps on a team of threads that stays in one parallel region
# --------------------------------------------------------------------------------------

# control words (``ctl``, int64), a cache line apart: steps published (the next step may start), band runs
# done (all runs), stop (no step after the last published), the flags' half in use, pass 1 on tiles, steps
# of the simulation, steps of this run, finite; then per band the last step it was claimed for
_PUBLISHED, _DONE, _STOP, _NOW, _TILES, _STEPS, _RUN, _FINITE, _CLAIMED = 0, 8, 16, 24, 32, 40, 48, 56, 64
_LINE = 8
# ``state`` (float64): time, the step's length and end, the deepest water, the last step's length
_T, _DT, _T1, _HMAX, _LAST_DT = range(5)
_SPINS_BEFORE_YIELD = 2000  # a wait longer than this (about 0.1 ms) gives the core away at each turn


def team_control(nbands: int) -> tuple[np.ndarray, np.ndarray]:
    """Control words and state for :func:`run_team_steps` on ``nbands`` bands."""
    return np.zeros(_CLAIMED + _LINE * nbands, dtype=np.int64), np.zeros(8, dtype=np.float64)


@njit(**_JIT_ROWS)
def _plan_step(ctl, state, bands, h, qy, starts, seam_old, h_min, theta, n_active, target_s, eps, max_steps, alpha,
               min_d, max_dt):
    """The next step's length and end and pass 1's way (as ``run_quiet_steps``'s loop), or stop."""
    t_s = state[_T]
    if not (t_s < target_s - eps and ctl[_RUN] < max_steps and ctl[_FINITE]):
        ctl[_STOP] = 1
        return
    remaining = target_s - t_s
    stable = max_dt
    h_max = state[_HMAX]
    if h_max > 0:
        stable = min(stable, alpha * min_d / math.sqrt(G_MPS2 * h_max))
    n = max(1, math.ceil(remaining / stable - 1e-9))
    dt = remaining / n
    state[_DT], state[_T1] = dt, t_s + dt
    if ctl[_STEPS] % _TILES_EVERY == 0:
        ctl[_TILES] = _deep_cells(h, h_min) < _TILES_BELOW * max(n_active, 1)
    if theta < 1.0:  # seams between bands: a neighbour may rewrite these faces before the band reads them
        for j in range(1, bands.size - 1):
            _save_old_seam(qy, starts, seam_old, bands[j])


@njit(**_JIT_ROWS)
def _start_team(ctl, state, bands, h, qy, starts, seam_old, h_min, theta, n_active, t_s, target_s, eps, max_steps,
                steps, alpha, min_d, max_dt, h_max, now, tiles):
    """The control words and state before the team starts, and its first step planned."""
    for i in range(ctl.size):
        ctl[i] = 0
    for j in range(bands.size - 1):
        ctl[_CLAIMED + _LINE * j] = -1
    ctl[_NOW], ctl[_TILES], ctl[_STEPS], ctl[_FINITE] = now, tiles, steps, 1
    state[_T], state[_HMAX], state[_LAST_DT] = t_s, h_max, math.nan
    _plan_step(ctl, state, bands, h, qy, starts, seam_old, h_min, theta, n_active, target_s, eps, max_steps, alpha,
               min_d, max_dt)


@njit(**_JIT_ROWS)
def _wait_for(ctl, word, at_least):
    """Spin until ``ctl[word]`` >= ``at_least``: a pause each turn, after a while giving the core away."""
    spins = 0
    while load_acquire(ctl, word) < at_least:
        spins += 1
        if spins > _SPINS_BEFORE_YIELD:
            yield_thread()
        else:
            spin_pause()


@njit(**_JIT_ROWS)
def _team_member(w, ctl, state, bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts,
                 span, seam_old, seam, f, limited, active, no_src, rate, cells, sink_store, no_drains, dx, dy, h_min,
                 theta, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx, rows64, flow,
                 runs, masks, totals, target_s, eps, max_steps, alpha, min_d, max_dt, n_active, area):
    """Member ``w`` of the team: at each step, claims band ``w`` (then any band still unclaimed) and runs it;
    whoever finishes a step's last band does its seams and sums and plans the next step.

    No member ever waits for a band nobody has claimed: a member that finds every band of a step claimed
    waits for members that are running them.  So the run ends even when the system gives the team fewer
    threads than bands (one thread then runs every band in turn).
    """
    nb = bands.size - 1
    has_sinks = rate < 0.0
    s = 0
    while True:
        _wait_for(ctl, _PUBLISHED, s)
        if load_acquire(ctl, _STOP):
            return
        for k in range(nb):
            j = (w + k) % nb
            if not compare_exchange(ctl, _CLAIMED + _LINE * j, s - 1, s):
                continue
            dt, t1, now, tiles = state[_DT], state[_T1], ctl[_NOW], ctl[_TILES] != 0  # step s's, until it ends
            _band(j, bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span,
                  seam_old, seam, f, limited, active, no_src, rate, False, cells, has_sinks, sink_store, no_drains, dt,
                  dt, dx, dy, h_min, theta, t1, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q,
                  rows_qx, rows64, flow, now, tiles, masks, runs)
            if fetch_add(ctl, _DONE, 1) + 1 < nb * (s + 1):
                continue
            # the step's last band: seams, sums and booking as ``run_quiet_steps``, then the next step
            _, _, capped, clamped, edge, _, h_max, finite = _band_seams(
                bands, h, qx, qy, f, limited, active, starts, span, seam, no_src, rate, False, cells, has_sinks,
                sink_store, no_drains, dt, dt, dx, dy, h_min, t1, arrival_depth, max_depth, max_speed, arrival, tally,
                rows32, rows_q, rows64, flow, now, tiles)
            ctl[_NOW] = 1 - now
            state[_HMAX], state[_LAST_DT] = h_max, dt
            if finite:
                _book(totals, rate, n_active, dt, area, capped, clamped, edge)
                state[_T] = t1
                ctl[_STEPS] += 1
                ctl[_RUN] += 1
            else:
                ctl[_FINITE] = 0
            _plan_step(ctl, state, bands, h, qy, starts, seam_old, h_min, theta, n_active, target_s, eps, max_steps,
                       alpha, min_d, max_dt)
            store_release(ctl, _PUBLISHED, s + 1)
        s += 1


@njit(parallel=True, **_JIT)
def run_team_steps(ctl, state, bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts,
                   span, seam_old, seam, f, limited, active, no_src, rate, cells, sink_store, no_drains, dx, dy, h_min,
                   theta, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx, rows64, flow,
                   runs, masks, totals, t_s, target_s, eps, max_steps, steps, alpha, min_d, max_dt, h_max, now, tiles,
                   n_active, area):
    """``run_quiet_steps`` on threads: ``_step_bands``'s steps, the same results to the bit, in one parallel region.

    The threads of ``_step_bands`` part and join at every step; here a team
    (one member per band, ``_team_member``) stays together for the whole run
    and hands steps on through the atomic words of ``ctl`` (``team_control``).
    """
    _start_team(ctl, state, bands, h, qy, starts, seam_old, h_min, theta, n_active, t_s, target_s, eps, max_steps,
                steps, alpha, min_d, max_dt, h_max, now, tiles)
    for w in prange(bands.size - 1):
        _team_member(w, ctl, state, bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope,
                     starts, span, seam_old, seam, f, limited, active, no_src, rate, cells, sink_store, no_drains, dx,
                     dy, h_min, theta, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx,
                     rows64, flow, runs, masks, totals, target_s, eps, max_steps, alpha, min_d, max_dt, n_active,
                     area)
    return (state[_T], ctl[_STEPS], state[_HMAX], ctl[_NOW], ctl[_TILES] != 0, ctl[_FINITE] != 0,
            state[_LAST_DT])
