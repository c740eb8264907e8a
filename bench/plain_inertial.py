"""A plain two-pass local inertial kernel: the bench's yardstick for this machine's speed in this run.

A shared machine's speed drifts by a third from hour to hour (and by more
within one run), so ``bench/flood.py`` times this kernel beside ours, in
turns, and prints our rates also as multiples of its own.  The ratio
drifts less than either rate, but not nothing: the two kernels are not
slowed alike.  It is not the planning prototype behind the 5e8 aim: in
float32, ``h ** (7/3)`` is a library call here (no SVML), so its loops do
not run in vectors, and it runs at about a quarter of the prototype's 6e8.

What it is: the scheme of Bates et al. (2010) with nothing else.  Depth,
bed and discharge in float32; x and y faces, then continuity, each over
the whole grid in parallel rows; uniform rain, closed edges, one Manning
n, no q-centring.  A face takes at most a quarter of its donor's depth in
a step, and a negative depth left by round-off is set to zero (mass is not
tracked).  No tiles, trackers or balance.
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


@numba.njit(fastmath=True, cache=True, inline="always")
def _face(q, z_a, z_b, h_a, h_b, g_dt_dx, g_dt_n2, h_min, cap):
    """New discharge on the face a -> b: semi-implicit Manning friction, zero below ``h_min`` of flow depth."""
    eta_a, eta_b = z_a + h_a, z_b + h_b
    hf = max(eta_a, eta_b) - max(z_a, z_b)
    if hf > h_min:
        q = (q - g_dt_dx * hf * (eta_b - eta_a)) / (np.float32(1.0) + g_dt_n2 * abs(q) / hf ** np.float32(7.0 / 3.0))
    else:
        q = np.float32(0.0)
    return _capped(q, h_a, h_b, cap)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _faces(z, h, qx, qy, dt, dx, n2, h_min):
    rows, cols = h.shape
    g_dt_dx, g_dt_n2 = G * dt / dx, G * dt * n2
    cap = dx / (np.float32(4.0) * dt)
    for r in prange(rows):
        for c in range(1, cols):
            qx[r, c] = _face(qx[r, c], z[r, c - 1], z[r, c], h[r, c - 1], h[r, c], g_dt_dx, g_dt_n2, h_min, cap)
        if r > 0:
            for c in range(cols):
                qy[r, c] = _face(qy[r, c], z[r - 1, c], z[r, c], h[r - 1, c], h[r, c], g_dt_dx, g_dt_n2, h_min,
                                 cap)


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
