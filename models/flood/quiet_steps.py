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

from numba import njit

from models.flood.hydraulics import _JIT, _TILES_BELOW, _TILES_EVERY, G_MPS2, _step_bands, _step_serial

#: ``run_quiet_steps``'s result: what it changed besides the arrays.
T_S, STEPS, H_MAX, NOW, TILES, FINITE, LAST_DT = range(7)


@njit(**_JIT)
def _deep_cells(h, h_min):
    """Cells deeper than ``h_min`` (``Simulation._on_tiles``'s count)."""
    n = 0
    for v in h.ravel():
        n += v > h_min
    return n


@njit(**_JIT)
def run_quiet_steps(threads, bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts,
                    span, seam_old, seam, f, limited, active, no_src, rate, cells, sink_store, dx, dy, h_min, theta,
                    arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx, rows64, flow, runs,
                    masks, totals, t_s, target_s, eps, max_steps, steps, alpha, min_d, max_dt, h_max, now, tiles,
                    n_active, area):
    """Steps of ``Simulation.step_towards(target_s)`` until ``t_s`` is within ``eps`` of ``target_s``, or
    ``max_steps`` of them; the source is ``rate`` (m/s) on every active cell.

    ``threads``: ``_step_bands`` with ``starts``/``bands`` its layout, else
    ``_step_serial``.  ``totals`` (m3): source in, sink out, sink capped,
    clamp added, edge outflow, added to as ``Simulation._book`` does.
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
        if threads:
            gains, wants, capped, clamped, edge, h_max, finite = _step_bands(
                bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
                seam, f, limited, active, no_src, rate, False, cells, has_sinks, sink_store, dt, dt, dx, dy, h_min,
                theta, t1, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx, rows64,
                flow, now, tiles, masks, runs)
        else:
            gains, wants, capped, clamped, edge, h_max, finite = _step_serial(
                bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
                seam, f, limited, active, no_src, rate, False, cells, has_sinks, sink_store, dt, dt, dx, dy, h_min,
                theta, t1, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx, rows64,
                flow, now, tiles, masks, runs)
        now = 1 - now
        if not finite:
            break
        gains = n_active * max(rate, 0.0) * dt
        wants = n_active * max(-rate, 0.0) * dt
        totals[0] += gains * area
        totals[1] += (wants - capped) * area
        totals[2] += capped * area
        totals[3] += clamped * area
        totals[4] += edge * dt
        t_s = t1
        steps += 1
        done += 1
    return t_s, steps, h_max, now, tiles, finite, dt
