"""A plain two-pass local inertial kernel: the bench's yardstick for this machine's speed in this run.

The flood aim (5e8 cell updates per second on 2 cores) was set against a
prototype of this form measured while planning at 6e8.  A shared machine's
speed drifts by a third from hour to hour, so ``bench/flood.py`` times this
kernel beside ours, in turns, and prints our rates as multiples of its own:
that ratio does not depend on how busy the machine is.

What it is: the scheme of Bates et al. (2010) with nothing else.  Depth,
bed and discharge in float32; x faces, then y faces, then continuity, each
over the whole grid in parallel rows; uniform rain, closed edges, one
Manning n, no q-centring; the wet/dry limit is the simplest that conserves
mass: a face takes at most a quarter of its donor's depth in a step, so no
cell goes negative.  No tiles, trackers or balance.
"""

from __future__ import annotations

import math
import time

import numba
import numpy as np
from numba import prange

G = np.float32(9.81)


@numba.njit(fastmath=True, cache=True, inline="always")
def _capped(q, h_a, h_b, cap):
    """q limited so that the face takes at most a quarter of its donor's depth in the step."""
    donor = h_a if q > 0 else h_b
    return min(max(q, -donor * cap), donor * cap)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _faces(z, h, qx, qy, dt, dx, n2, h_min):
    rows, cols = h.shape
    g_dt = G * dt
    inv_dx = np.float32(1.0) / dx
    cap = dx / (np.float32(4.0) * dt)
    for r in prange(rows):
        for c in range(1, cols):
            ea, eb = z[r, c - 1] + h[r, c - 1], z[r, c] + h[r, c]
            hf = max(ea, eb) - max(z[r, c - 1], z[r, c])
            q = qx[r, c]
            if hf > h_min:
                q = (q - g_dt * hf * (eb - ea) * inv_dx) / (np.float32(1.0) + g_dt * n2 * abs(q) / hf ** np.float32(7.0 / 3.0))
            else:
                q = np.float32(0.0)
            qx[r, c] = _capped(q, h[r, c - 1], h[r, c], cap)
        if r > 0:
            for c in range(cols):
                ea, eb = z[r - 1, c] + h[r - 1, c], z[r, c] + h[r, c]
                hf = max(ea, eb) - max(z[r - 1, c], z[r, c])
                q = qy[r, c]
                if hf > h_min:
                    q = (q - g_dt * hf * (eb - ea) * inv_dx) / (np.float32(1.0) + g_dt * n2 * abs(q) / hf ** np.float32(7.0 / 3.0))
                else:
                    q = np.float32(0.0)
                qy[r, c] = _capped(q, h[r - 1, c], h[r, c], cap)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _continuity(h, qx, qy, dt, dx, rain):
    rows, cols = h.shape
    dt_dx = dt / dx
    gain = rain * dt
    h_max = np.zeros(rows, dtype=np.float32)
    for r in prange(rows):
        top = np.float32(0.0)
        for c in range(cols):
            v = h[r, c] + dt_dx * (qx[r, c] - qx[r, c + 1] + qy[r, c] - qy[r + 1, c]) + gain
            v = max(v, np.float32(0.0))
            h[r, c] = v
            top = max(top, v)
        h_max[r] = top
    return h_max.max()


class PlainInertial:
    """The plain kernel on a bed (m; NaN: a wall), cell size (m), Manning n, uniform rain (m/s); alpha 0.5."""

    def __init__(self, z_m: np.ndarray, dx_m: float, manning_n: float, rain_m_s: float,
                 max_dt_s: float = 10.0) -> None:
        rows, cols = z_m.shape
        # cells outside the DEM (NaN) become walls: a bed so high that no face next to them carries water
        self.z = np.ascontiguousarray(np.where(np.isfinite(z_m), z_m, 1e30), dtype=np.float32)
        self.h = np.zeros((rows, cols), dtype=np.float32)
        self.qx = np.zeros((rows, cols + 1), dtype=np.float32)
        self.qy = np.zeros((rows + 1, cols), dtype=np.float32)
        self.dx, self.n2, self.rain = np.float32(dx_m), np.float32(manning_n**2), np.float32(rain_m_s)
        self.max_dt_s = max_dt_s
        self.h_max = 0.0
        self.t_s = 0.0
        self.steps = 0

    @property
    def cells(self) -> int:
        return int(self.h.size)

    def next_dt_s(self) -> float:
        if self.h_max <= 0.0:
            return self.max_dt_s
        return min(self.max_dt_s, 0.5 * float(self.dx) / math.sqrt(9.81 * self.h_max))

    def step(self) -> None:
        dt = np.float32(self.next_dt_s())
        _faces(self.z, self.h, self.qx, self.qy, dt, self.dx, self.n2, np.float32(1e-3))
        self.h_max = float(_continuity(self.h, self.qx, self.qy, dt, self.dx, self.rain))
        self.t_s += float(dt)
        self.steps += 1

    def run_until(self, t_end_s: float) -> None:
        while self.t_s < t_end_s - 1e-9:
            self.step()


class Yardstick:
    """The plain kernel on a wetted crop, timed in turns with the runs it is a yardstick for.

    Built once (the crop is wetted for ``wet_s`` of rain, which also
    compiles the kernel); each :meth:`rate` goes on from where the last
    stopped, so every turn times the same kind of wet state.
    """

    def __init__(self, z_m: np.ndarray, dx_m: float, manning_n: float, rain_m_s: float, wet_s: float) -> None:
        self.sim = PlainInertial(z_m, dx_m, manning_n, rain_m_s)
        self.sim.run_until(wet_s)
        self.rates: list[float] = []

    def rate(self, window_s: float) -> float:
        """Cell updates per second over at least ``window_s`` (and 10 steps); kept in ``rates``."""
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < window_s or steps < 10:
            self.sim.step()
            steps += 1
        self.rates.append(steps * self.sim.cells / elapsed)
        return self.rates[-1]
