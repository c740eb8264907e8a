"""2D local inertial shallow-water solver on a regular grid (Bates et al. 2010, LISFLOOD-FP).

State: depth ``h`` (m, float64) at cell centres, unit discharge ``qx`` (m2/s)
on the faces between columns (rows x cols+1) and ``qy`` on the faces between
rows (rows+1 x cols).  Positive ``qx`` flows towards higher column numbers
(east), positive ``qy`` towards higher row numbers (south, row 0 is north).

One step of length dt (s):

1. Face update with semi-implicit Manning friction and the q-centred blend of
   de Almeida et al. (2012)::

       h_flow = max(eta_a, eta_b) - max(z_a, z_b)
       q_new  = (theta q + (1-theta)/2 (q_prev + q_next) - g h_flow dt d(eta)/dx)
                / (1 + g dt n^2 |q| / h_flow^(7/3))

   q = 0 where h_flow <= h_min_m or neither cell is deeper than h_min_m; n on
   a face is the mean of its cells' n.
   theta = 1 is the original scheme; the default 0.8 damps the checkerboard
   mode that makes theta = 1 unstable on low-friction water.
2. Wet/dry limiter: a cell may not send out more than it holds.  Its outgoing
   face fluxes are scaled by ``min(1, h / outflow)``; each face is scaled by
   the factor of the cell it drains (its donor), so what leaves one cell
   enters the next and the limiter conserves mass.
3. Continuity ``h += dt (q_in - q_out)/dx + ...``, then sources (m/s): gains
   are added, sinks take at most the water present (the rest is reported as
   capped), round-off negatives are set to zero and the water this adds is
   counted in the balance.
4. Inflow hydrographs and held levels (``boundaries``); extrema trackers.

dt = alpha min(dx, dy) / sqrt(g h_max), capped by ``max_dt_s`` and by report
and end times so that those are hit exactly.  On a square grid this scheme's
linear limit is alpha = 1/sqrt(2); the default 0.5 leaves a margin, as 0.6
and above let sloshing water blow up in tests.

Walls (NaN bed, obstacles) carry a huge bed level inside the kernels, so that
``h_flow`` is zero on every face touching them: no flow, no storage.  Depth is
float64: with float32 depth a closed domain drifted by 1e-5 of its volume in
an hour.  Discharge is stored as float32 by default (``dtype``).  The face
update runs in float32 (twice the vector width of float64): each row's water
levels are rounded to float32 once per cell, so cells at one level stay at
exactly one level and a lake at rest stays at rest; friction's h^(-7/3) is a
quartic correction of a bit-level guess (relative error 7.5e-6).  The face
update's multiply-adds are fused (one rounding each), the same on every code
path.  Each limited face flux is rounded to the storage type once and that
value is used by both cells of the face, so rounding does not leak mass.

The grid is cut into blocks of rows; inside a block rows run in order.  Each
thread takes a band of consecutive blocks (the rows between its seams as one
block) and runs pass 2 of a block after pass 1 of the next one; the two-row
blocks at the bands' seams finish after all bands.  Faces on the seam between
two blocks are copied before the in-place updates, so that no block reads a
value another block is rewriting.  Pass 1 works only on the tiles of a row
where water may flow (``tiles``): elsewhere every face is zero and stays
so.  Grids under ``_SERIAL_CELLS`` run on the calling thread, and larger
ones do too while that is quicker (another program holding a core:
``kernel_choice``); the blocks give the same results to the bit whatever
their number and the number of threads.  The row kernels allocate nothing
(each thread's row buffers come from the simulation) and are compiled
without reference counting: every row view would otherwise cost two atomic
operations on a counter that all threads share (16 % of a step's time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic

from models.flood.boundaries import (
    DischargeInflow,
    Edges,
    LevelBoundary,
    add_inflows,
    hold_levels,
    joined_cells,
    place,
)
from models.flood.kernel_choice import KernelChoice
from models.flood.sources import NO_CELL_SOURCES, SOIL_NONE, ZonedSources, net_rain_row
from models.flood.vectors import prefetch, span_sum, trailing_zeros
from models.flood.tiles import (
    TILE_COLS,
    active_tiles,
    covers,
    every_tile,
    flow_flags,
    row_flags,
    tile_count,
    tile_marks,
    tile_runs,
    word_count,
)

G_MPS2 = 9.81
WALL_Z_M = 1.0e30
_WALL_TEST_M = 1.0e29
_TINY = 1e-300
_SHARE_MARGIN = 1.0 - 2.0**-20  # keeps float32 rounding of limited fluxes from overdrawing a cell
_SERIAL_CELLS = 1 << 14  # grids smaller than this (128 x 128) step on one thread (see _blocks)
_SEAM_ROWS = 2  # rows of the blocks on either side of a seam between two threads' bands (see _blocks)
_DRY_AROUND = -1  # ``limited`` of a row with no active tile (``tiles``): all its faces are zero
_N_TALLY = 7  # per row: gains, sink demand, capped demand, clamped, edge outflow (q x length), max depth, drained

SourceRate = Callable[[float], "float | np.ndarray"]


# --------------------------------------------------------------------------------------
# Grid, state and balance
# --------------------------------------------------------------------------------------


@dataclass
class FloodGrid:
    """Bed, cell size and roughness of the flood domain.

    ``z_m`` is the bed (m), NaN outside the domain; ``obstacles`` (bool) marks
    cells that are walls too (buildings).  ``manning_n`` (s/m^(1/3)) is a
    scalar or one value per cell.
    """

    z_m: np.ndarray
    dx_m: float
    dy_m: float | None = None
    manning_n: float | np.ndarray = 0.03
    obstacles: np.ndarray | None = None
    active: np.ndarray = field(init=False, repr=False)
    """True on cells that hold water (not NaN, not an obstacle)."""

    def __post_init__(self) -> None:
        z = np.asarray(self.z_m, dtype=np.float64)
        if z.ndim != 2 or min(z.shape) < 1:
            raise ValueError(f"bed must be a 2D array, got shape {z.shape}")
        self.dy_m = self.dx_m if self.dy_m is None else self.dy_m
        if not (self.dx_m > 0 and self.dy_m > 0):
            raise ValueError(f"cell size must be positive, got {self.dx_m} x {self.dy_m} m")
        active = np.isfinite(z)
        if self.obstacles is not None:
            obstacles = np.asarray(self.obstacles, dtype=bool)
            if obstacles.shape != z.shape:
                raise ValueError(f"obstacle mask has shape {obstacles.shape}, the bed {z.shape}")
            active &= ~obstacles
        n = np.asarray(self.manning_n, dtype=np.float64)
        if n.ndim not in (0, 2) or (n.ndim == 2 and n.shape != z.shape):
            raise ValueError(f"manning_n must be a scalar or an array of shape {z.shape}")
        bad_n = ~np.isfinite(n) | (n < 0)
        if np.any(bad_n if n.ndim == 0 else bad_n & active):
            raise ValueError("manning_n must be finite and >= 0 on every open cell")
        self.z_m = z
        self.manning_n = float(n) if n.ndim == 0 else np.where(active, n, 0.0)
        self.active = active

    @classmethod
    def from_grid(cls, grid, *, manning_n: float | np.ndarray = 0.03,
                  obstacles: np.ndarray | None = None) -> FloodGrid:
        """A flood domain on a :class:`twin.geo.raster.Grid` DEM (NaN cells outside)."""
        dx, dy = grid.cell_size
        return cls(np.asarray(grid.values, dtype=np.float64), dx, dy, manning_n, obstacles)

    def coarsened(self, factor: int) -> FloodGrid:
        """The same domain on cells ``factor`` times larger (a quicker, coarser run).

        Bed and n are block means over open cells; a coarse cell is an obstacle
        where obstacles cover at least half of its fine cells.
        """
        obstacles = None
        if self.obstacles is not None:
            obstacles = coarsen(np.asarray(self.obstacles, dtype=np.float64), factor) >= 0.5
        n = self.manning_n
        if np.ndim(n):
            n = np.nan_to_num(coarsen(np.where(self.active, n, np.nan), factor), nan=0.0)
        z = coarsen(self.z_m, factor)
        return FloodGrid(z, self.dx_m * factor, self.dy_m * factor, n, obstacles)

    @property
    def shape(self) -> tuple[int, int]:
        return self.z_m.shape  # type: ignore[return-value]

    @property
    def cell_area_m2(self) -> float:
        return float(self.dx_m * self.dy_m)

    def kernel_bed(self) -> np.ndarray:
        """Bed with walls raised to a huge level (what the kernels read)."""
        return np.where(self.active, self.z_m, WALL_Z_M)

    def face_friction(self) -> tuple[np.ndarray, np.ndarray] | None:
        """g n^2 on x and y faces (n = mean of the two cells; edges take their cell), or None if uniform."""
        if np.ndim(self.manning_n) == 0:
            return None
        n = self.manning_n
        nx = np.empty((n.shape[0], n.shape[1] + 1))
        nx[:, 1:-1] = 0.5 * (n[:, 1:] + n[:, :-1])
        nx[:, 0], nx[:, -1] = n[:, 0], n[:, -1]
        ny = np.empty((n.shape[0] + 1, n.shape[1]))
        ny[1:-1] = 0.5 * (n[1:] + n[:-1])
        ny[0], ny[-1] = n[0], n[-1]
        return G_MPS2 * nx**2, G_MPS2 * ny**2


@dataclass
class FloodState:
    """Depth (m) at cells, unit discharges (m2/s) on faces, time (s)."""

    h: np.ndarray
    qx: np.ndarray
    qy: np.ndarray
    t_s: float


@dataclass(frozen=True)
class MassBalance:
    """Water volumes (m3) since the start of the run.

    ``clamp_added_m3`` is water added when round-off negatives were set to zero;
    ``sink_capped_m3`` is sink demand that found no water (not removed).
    """

    t_s: float
    initial_storage_m3: float
    storage_m3: float
    source_in_m3: float
    inflow_m3: float
    level_in_m3: float
    clamp_added_m3: float
    sink_out_m3: float
    sink_capped_m3: float
    edge_outflow_m3: float
    level_out_m3: float
    pumped_m3: float = 0.0
    """Water taken out by pumps (:meth:`Simulation.withdraw`)."""

    @property
    def total_in_m3(self) -> float:
        return self.source_in_m3 + self.inflow_m3 + self.level_in_m3 + self.clamp_added_m3

    @property
    def total_out_m3(self) -> float:
        return self.sink_out_m3 + self.edge_outflow_m3 + self.level_out_m3 + self.pumped_m3

    @property
    def storage_change_m3(self) -> float:
        return self.storage_m3 - self.initial_storage_m3

    @property
    def error_m3(self) -> float:
        return self.storage_change_m3 - (self.total_in_m3 - self.total_out_m3)

    @property
    def relative_error(self) -> float:
        """|storage change - (in - out)| / (total in + storage), storage being the larger of now and at start.

        Taking the larger storage keeps the measure meaningful when a domain
        drains empty (storage now 0, nothing flowed in).
        """
        scale = self.total_in_m3 + max(abs(self.storage_m3), self.initial_storage_m3)
        return abs(self.error_m3) / max(scale, _TINY)


def coarsen(values: np.ndarray, factor: int) -> np.ndarray:
    """Block mean over ``factor`` x ``factor`` cells, ignoring NaN; all-NaN blocks stay NaN.

    Edge blocks that are cut by the grid border average the cells they have.
    """
    if int(factor) != factor or factor < 1:
        raise ValueError(f"coarsening factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    v = np.asarray(values, dtype=np.float64)
    rows, cols = v.shape
    out_r, out_c = -(-rows // factor), -(-cols // factor)
    padded = np.full((out_r * factor, out_c * factor), np.nan)
    padded[:rows, :cols] = v
    blocks = padded.reshape(out_r, factor, out_c, factor)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


# --------------------------------------------------------------------------------------
# Compiled kernels
# --------------------------------------------------------------------------------------

_JIT = dict(cache=True, error_model="numpy", fastmath=False)
_JIT_ROWS = dict(_JIT, _nrt=False)  # no reference counts: row views cost an atomic add each, and threads share them
_JIT_FACES = dict(_JIT_ROWS, fastmath={"contract"})  # fused multiply-adds in the face update
_F32_ONE = np.float32(1.0)
_ABS_BITS = np.int64(0x7FFFFFFFFFFFFFFF)  # all bits of a float64 but its sign
_MARGIN32 = np.float32(_SHARE_MARGIN)
_ALL_TILES = ~np.uint64(0)
_TILES_EVERY = 50  # steps between two choices of pass 1's way (``Simulation._on_tiles``)
_QUIET_RUN_STEPS = 256  # most steps of one compiled run (``Simulation._quiet_steps_to``) ...
_QUIET_RUN_S = 0.05  # ... and about how long one lasts: each is timed for the kernel choice, and Ctrl-C waits for it
_TILES_BELOW = 0.3  # pass 1 on tiles while fewer than this share of the domain's cells are deeper than h_min


@intrinsic
def _f32_bits(typingctx, x):
    """Bits of a float32 as int32 (a reinterpretation, not a conversion)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _bits_f32(typingctx, i):
    """The float32 whose bits are the int32 ``i``."""
    if i != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _f64_bits(typingctx, x):
    """Bits of a float64 as int64 (a reinterpretation, not a conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, i):
    """The float64 whose bits are the int64 ``i``."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_FRICTION_POLY = (0.999994695186615, 2.3330907821655273, 3.894289255142212, 5.721700191497803,
                  6.902220726013184)
"""(1 - e)^(-7/3) for e in (-0.121, 0.091), the range of the bit-level guess's error (see ``_friction32``)."""


@njit(inline="always", **_JIT)
def _friction_coefficients(scale):
    """The coefficients of ``_FRICTION_POLY`` times ``scale`` (float32): g dt n^2 folded into the polynomial."""
    s = np.float32(scale)
    p = _FRICTION_POLY
    return (s * np.float32(p[0]), s * np.float32(p[1]), s * np.float32(p[2]), s * np.float32(p[3]),
            s * np.float32(p[4]))


@njit(inline="always", **_JIT)
def _friction32(h_flow, coef):
    """g dt n^2 / h_flow^(7/3) (s/m2, float32) for h_flow > 0, with ``coef = _friction_coefficients(g dt n^2)``.

    No calls, so that loops vectorise.  A bit-level guess r of h^(-1/3)
    (within 4 %), then with e = 1 - h r^3: h^(-7/3) = r^7 (1 - e)^(-7/3),
    the second factor a quartic in e fitted to the guess's range of e.
    Largest relative error 7.5e-6 over all float32 inputs (checked by brute
    force): far inside what anyone knows of Manning's n, in 14 operations.
    """
    bits = _f32_bits(h_flow)
    guess = np.int32(np.int32(0x54A2FA8D) - np.int32(np.float32(bits) * np.float32(1.0 / 3.0)))
    r = _bits_f32(guess)
    r3 = r * r * r
    e = _F32_ONE - h_flow * r3
    return (r3 * r3 * r) * (coef[0] + e * (coef[1] + e * (coef[2] + e * (coef[3] + e * coef[4]))))


@njit(inline="always", **_JIT)
def _face_q(q, q_prev, q_next, eta_a, eta_b, z_a, z_b, h_a, h_b, w_self, w_side, g_dt_d, fric, n_scale, h_min):
    """New unit discharge (m2/s, float32) on the face a -> b; zero unless the flow depth is above ``h_min``
    and a cell of the face (depths ``h_a``, ``h_b``) is deeper than ``h_min``.

    All in float32: levels, flow depth, slope, the q-centred blend and the
    semi-implicit friction.  ``g_dt_d`` is g dt / (face spacing); friction is
    ``_friction32`` with coefficients ``fric``, times ``n_scale`` (dt g n^2 of
    the face where n varies, else 1).  In exact arithmetic the flow depth is
    at most the deeper cell's depth; the second condition makes that hold
    after rounding too, so that faces between films are zero whether or not
    they are computed (``tiles``).
    """
    h_flow = max(eta_a, eta_b) - max(z_a, z_b)
    num = w_self * q + w_side * (q_prev + q_next) - g_dt_d * h_flow * (eta_b - eta_a)
    den = _F32_ONE + (_friction32(max(h_flow, h_min), fric) * n_scale) * abs(q)
    return num / den if (h_flow > h_min) & (max(h_a, h_b) > h_min) else np.float32(0.0)


@njit(inline="always", **_JIT)
def _free_outflow_q(q_out, depth_m, slope_out, g_dt, friction_per_q, h_min):
    """Outward unit discharge (m2/s, >= 0) on an open edge face after one step.

    ``q_out`` is the outward discharge before the step, ``slope_out`` the
    outward fall of the water surface (m/m), ``friction_per_q`` is
    g dt n^2 / h^(7/3) of the edge cell (see ``boundaries``).
    """
    q_new = (q_out + g_dt * depth_m * slope_out) / (1.0 + friction_per_q * abs(q_out))
    return q_new if depth_m > h_min and q_new > 0.0 else 0.0


@njit(inline="always", **_JIT)
def _open_edge_q(q_out, depth, z_edge, eta_in, slope_fixed, inv_d, g_dt, dt_n2, h_min):
    """Outward unit discharge (m2/s, >= 0) on the face of an edge cell on an open edge.

    ``q_out``: outward discharge before the step; ``eta_in``: water level of
    the cell inward of the edge cell (-inf where there is none or it is a
    wall).  The outward fall of the surface is ``slope_fixed`` where that is
    given (>= 0), else the fall from the inward cell to the edge cell, never
    negative.  ``dt_n2`` is dt g n^2 on the face.
    """
    slope = slope_fixed if slope_fixed >= 0.0 else max(eta_in - (z_edge + depth), 0.0) * inv_d
    friction = _friction32(np.float32(depth), _friction_coefficients(dt_n2))
    q = _free_outflow_q(q_out, depth, slope, g_dt, friction, h_min)
    return q if z_edge < _WALL_TEST_M else 0.0


@njit(inline="always", **_JIT)
def _inward_level(z_in, h_in, has_in):
    """Water level (m) of the cell inward of an edge cell; -inf where there is none or it is a wall."""
    return z_in + h_in if has_in and z_in < _WALL_TEST_M else -np.inf


@njit(**_JIT_ROWS)
def _edge_row(q, sign, h_e, z_e, h_in, z_in, has_in, n2_row, per_face_n, gn2, slope_fixed, inv_d, g_dt, dt,
              h_min):
    """New discharges (in place) on the faces along the north (``sign`` -1) or south (+1) edge.

    ``h_e``, ``z_e`` are the edge row's depth and bed, ``h_in``, ``z_in`` the
    next row inwards (read only if ``has_in``).  One loop without calls, so
    that it vectorises.
    """
    for c in range(q.size):
        n2 = n2_row[c] if per_face_n else gn2
        eta_in = _inward_level(z_in[c], h_in[c], has_in)
        q[c] = sign * _open_edge_q(sign * q[c], h_e[c], z_e[c], eta_in, slope_fixed, inv_d, g_dt, dt * n2, h_min)


@njit(inline="always", **_JIT)
def _side_q(q, sign, hr, zr, c_edge, c_in, has_in, n2, slope_fixed, inv_d, g_dt, dt, h_min):
    """New discharge on the west (``sign`` -1) or east (+1) edge face of one row."""
    eta_in = _inward_level(zr[c_in], hr[c_in], has_in)
    return sign * _open_edge_q(sign * q, hr[c_edge], zr[c_edge], eta_in, slope_fixed, inv_d, g_dt, dt * n2, h_min)


@njit(inline="always", **_JIT)
def _drain_factor(hr, qxr, q_top, q_bot, fr, dt_dx, dt_dy):
    """Share of its outgoing fluxes each cell of a row can supply (1 = all); returns 1 if any is below 1, else 0.

    float32 with a margin of 2^-20, larger than the float32 round-off of the
    outflow, the share and the limited fluxes, so no cell gives more than it holds.
    Shares are in [0, 1], where the order of the bit patterns as int32 is the
    order of the values: an int32 minimum keeps the loop in 16-lane vectors.
    """
    zero, dt_dx32, dt_dy32 = np.float32(0.0), np.float32(dt_dx), np.float32(dt_dy)
    one_bits = _f32_bits(_F32_ONE)
    lowest = one_bits
    for c in range(hr.size):
        out = (max(-np.float32(qxr[c]), zero) + max(np.float32(qxr[c + 1]), zero)) * dt_dx32 + (
            max(-np.float32(q_top[c]), zero) + max(np.float32(q_bot[c]), zero)) * dt_dy32
        h32 = np.float32(hr[c])
        share = _F32_ONE if out <= h32 * _MARGIN32 else (h32 / out) * _MARGIN32
        fr[c] = share
        lowest = min(lowest, _f32_bits(share))
    return 1 if lowest < one_bits else 0


@njit(inline="always", **_JIT)
def _levels32(zr, hr, e32, z32, h32):
    """Bed, water level and depth of one row rounded once to float32 (the face loops and drain factors read these).

    Rounding the level once per cell keeps a lake at rest exactly at rest: cells
    whose float64 levels are equal get the same float32 level.
    """
    for c in range(hr.size):
        z32[c] = np.float32(zr[c])
        e32[c] = np.float32(zr[c] + hr[c])
        h32[c] = np.float32(hr[c])


@njit(inline="always", **_JIT)
def _prefetch_tiles(mask, h_row, z_row, qx_row, qy_row):
    """Ask for the cache lines of a row's flagged tiles (depth and bed: two lines a tile, discharges: one).

    Pass 1 on tiles reads short runs scattered over the grid, and each run's
    first load waited on memory: the hardware's prefetchers follow streams,
    and these are not.  Asked for a row ahead, the lines are there in time.
    """
    for w in range(mask.size):
        word = mask[w]
        while word:
            c = (w * 64 + trailing_zeros(word)) * TILE_COLS
            word &= word - np.uint64(1)
            prefetch(h_row, c)
            prefetch(h_row, c + 8)
            prefetch(z_row, c)
            prefetch(z_row, c + 8)
            prefetch(qx_row, c)
            prefetch(qy_row, c)


@njit(**_JIT_FACES)
def _x_faces(e32, z32, h32, qxr, new, nr, per_face_n, fk, dt32, h_min32, centred, w_self, w_side, g_dt_dx):
    """New discharges (in place) on the inner faces between the columns of one run of a row (float32).

    The blend reads the old values of both neighbouring faces, so the new
    ones go to the row buffer ``new`` first and are copied back after (from
    the core's cache: the face loop is the row's first read of ``qxr``).
    ``fk``: friction coefficients (``_friction_coefficients``) of g dt n^2,
    or of 1 where n is per face.
    """
    cols = e32.size
    zero = np.float32(0.0)
    if centred:
        if per_face_n:
            for c in range(1, cols):
                new[c] = _face_q(np.float32(qxr[c]), np.float32(qxr[c - 1]), np.float32(qxr[c + 1]), e32[c - 1],
                                 e32[c], z32[c - 1], z32[c], h32[c - 1], h32[c], w_self, w_side, g_dt_dx, fk,
                                 dt32 * nr[c], h_min32)
        else:
            for c in range(1, cols):
                new[c] = _face_q(np.float32(qxr[c]), np.float32(qxr[c - 1]), np.float32(qxr[c + 1]), e32[c - 1],
                                 e32[c], z32[c - 1], z32[c], h32[c - 1], h32[c], w_self, w_side, g_dt_dx, fk,
                                 _F32_ONE, h_min32)
        for c in range(1, cols):
            qxr[c] = new[c]
    else:
        for c in range(1, cols):
            n_scale = dt32 * nr[c] if per_face_n else _F32_ONE
            qxr[c] = _face_q(np.float32(qxr[c]), zero, zero, e32[c - 1], e32[c], z32[c - 1], z32[c], h32[c - 1],
                             h32[c], w_self, w_side, g_dt_dx, fk, n_scale, h_min32)


@njit(**_JIT_FACES)
def _y_faces(e_r, z_r, h_r, z_below, h_below, e_k, z_k, h_k, qk, cur_old, nk, per_face_n, fk, dt32, h_min32, centred,
             prev_old, nxt, w_self, w_side, g_dt_dy):
    """New discharges (in place) on the faces between row r (``e_r``, ``z_r``, ``h_r``) and the row below.

    The same loop rounds the row below to float32 (``z_below``, ``h_below``
    into ``e_k``, ``z_k``, ``h_k``, as ``_levels32``): its bed and depth are
    read here for the first time in the step, and their loads overlap with
    the face arithmetic.  ``cur_old`` receives the old discharges (when
    ``centred``); ``prev_old`` and ``nxt`` are the old discharges on the face
    rows above and below; ``fk`` as in ``_x_faces``.  The loops for per-face
    and uniform n are written out apiece: a choice inside one loop would read
    ``nk`` (one value when n is uniform) on every lane.
    """
    cols = e_r.size
    zero = np.float32(0.0)
    if centred:
        if per_face_n:
            for c in range(cols):
                zc, hc = z_below[c], h_below[c]
                zk, ek, hk = np.float32(zc), np.float32(zc + hc), np.float32(hc)
                z_k[c], e_k[c], h_k[c] = zk, ek, hk
                q = qk[c]
                cur_old[c] = q
                qk[c] = _face_q(np.float32(q), np.float32(prev_old[c]), np.float32(nxt[c]), e_r[c], ek, z_r[c], zk,
                                h_r[c], hk, w_self, w_side, g_dt_dy, fk, dt32 * nk[c], h_min32)
        else:
            for c in range(cols):
                zc, hc = z_below[c], h_below[c]
                zk, ek, hk = np.float32(zc), np.float32(zc + hc), np.float32(hc)
                z_k[c], e_k[c], h_k[c] = zk, ek, hk
                q = qk[c]
                cur_old[c] = q
                qk[c] = _face_q(np.float32(q), np.float32(prev_old[c]), np.float32(nxt[c]), e_r[c], ek, z_r[c], zk,
                                h_r[c], hk, w_self, w_side, g_dt_dy, fk, _F32_ONE, h_min32)
    else:
        for c in range(cols):
            zc, hc = z_below[c], h_below[c]
            zk, ek, hk = np.float32(zc), np.float32(zc + hc), np.float32(hc)
            z_k[c], e_k[c], h_k[c] = zk, ek, hk
            n_scale = dt32 * nk[c] if per_face_n else _F32_ONE
            qk[c] = _face_q(np.float32(qk[c]), zero, zero, e_r[c], ek, z_r[c], zk, h_r[c], hk, w_self, w_side,
                            g_dt_dy, fk, n_scale, h_min32)


@njit(inline="always", **_JIT)
def _row_levels(z, h, e32, z32, h32, starts, ends, n):
    """``_levels32`` of one row on its runs."""
    for i in range(n):
        a, e = starts[i], ends[i]
        _levels32(z[a:e], h[a:e], e32[a:e], z32[a:e], h32[a:e])


@njit(inline="always", **_JIT)
def _row_levels_between(z, h, e32, z32, h32, run_k, n_k, run_y, n_y):
    """``_levels32`` of one row on its runs ``run_k`` outside the runs ``run_y`` (each within one of them)."""
    j = 0
    for i in range(n_k):
        pos, e = run_k[0, i], run_k[1, i]
        while j < n_y and run_y[0, j] < e:
            if run_y[0, j] > pos:
                a = pos
                b = run_y[0, j]
                _levels32(z[a:b], h[a:b], e32[a:b], z32[a:b], h32[a:b])
            pos = max(pos, run_y[1, j])
            j += 1
        if pos < e:
            _levels32(z[pos:e], h[pos:e], e32[pos:e], z32[pos:e], h32[pos:e])


@njit(**_JIT_ROWS)
def _north_of_block(b, z, h, qy, gn2_y, gn2, per_face_n, open_edges, edge_slope, seam_old, prev_old, inv_dy, g_dt,
                    dt, h_min):
    """Pass 1 before block b's first row: the old discharges above it into ``prev_old`` (from the seam's copy, or
    the grid's north edge), and on the north edge its new faces (zero where closed)."""
    rows, cols = h.shape
    if b == 0:
        for c in range(cols):
            prev_old[c] = qy[0, c]
        if not open_edges[0]:
            for c in range(cols):
                qy[0, c] = 0.0
        else:
            inner = min(1, rows - 1)
            _edge_row(qy[0], -1.0, h[0], z[0], h[inner], z[inner], rows > 1, gn2_y[0], per_face_n, gn2, edge_slope,
                      inv_dy, g_dt, dt, h_min)
    else:
        for c in range(cols):
            prev_old[c] = seam_old[b, 0, c]


@njit(**_JIT_ROWS)
def _flux_block(b, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope,
                starts, seam_old, f, limited, flow, now, dt, dx, dy, h_min, theta, rows32, rows_q, row_qx,
                masks, runs):
    """Pass 1 on one block of rows, top to bottom (``rows32``, ``rows_q``, ``row_qx``, ``masks``, ``runs``: the
    thread's row buffers).

    Faces are computed on the active tiles only (``tiles``): a row's inner
    x faces, levels and drain factors on its active tiles widened by a column
    on each side, the faces below it where both rows' tiles are active.  All
    other faces are zero and stay so.  A row with no active tile is marked
    ``_DRY_AROUND`` (pass 2 may skip it).
    """
    rows, cols = h.shape
    g_dt = G_MPS2 * dt
    g_dt_dx32, g_dt_dy32 = np.float32(g_dt / dx), np.float32(g_dt / dy)
    inv_dx, inv_dy = 1.0 / dx, 1.0 / dy
    dt_dx, dt_dy = dt / dx, dt / dy
    w_self, w_side = np.float32(theta), np.float32(0.5 * (1.0 - theta))
    centred = theta < 1.0
    dt32, h_min32 = np.float32(dt), np.float32(h_min)
    fk = _friction_coefficients(_F32_ONE if per_face_n else np.float32(dt * gn2))
    r0, r1 = starts[b], starts[b + 1]
    e_r, z_r, e_k, z_k = rows32[0][:cols], rows32[1][:cols], rows32[2][:cols], rows32[3][:cols]
    h_r, h_k = rows32[4][:cols], rows32[5][:cols]
    x_new, prev_old, cur_old = row_qx[:cols + 1], rows_q[0][:cols], rows_q[1][:cols]
    act_r, act_k, y_now, y_prev, fill, full = masks[0], masks[1], masks[2], masks[3], masks[4], masks[5]
    run_r, run_k, run_y, run_fill = runs[0], runs[1], runs[2], runs[3]
    every_tile(cols, full)
    active_tiles(flow, now, r0, act_r)
    n_r = tile_runs(act_r, cols, 1, run_r[0], run_r[1])
    dense_prev = True  # the faces above row r were dense (every tile active: one run, the whole row)
    _row_levels(z[r0], h[r0], e_r, z_r, h_r, run_r[0], run_r[1], n_r)
    for w in range(y_prev.size):  # the old discharges above the block's first row are all in ``prev_old``
        y_prev[w] = _ALL_TILES
    _north_of_block(b, z, h, qy, gn2_y, gn2, per_face_n, open_edges, edge_slope, seam_old, prev_old, inv_dy, g_dt,
                    dt, h_min)
    for r in range(r0, r1):
        qxr, h_row = qx[r], h_r
        for i in range(n_r):
            a, e = run_r[0, i], run_r[1, i]
            nr = gn2_x[r][a:e + 1] if per_face_n else gn2_x[0]
            _x_faces(e_r[a:e], z_r[a:e], h_r[a:e], qxr[a:e + 1], x_new[a:e + 1], nr, per_face_n, fk, dt32, h_min32,
                     centred, w_self, w_side, g_dt_dx32)
        west = east = 0.0  # closed edges carry nothing; open ones read their old discharge
        if open_edges[2]:
            n2 = gn2_x[r, 0] if per_face_n else gn2
            west = _side_q(qxr[0], -1.0, h[r], z[r], 0, min(1, cols - 1), cols > 1, n2, edge_slope, inv_dx, g_dt,
                           dt, h_min)
        if open_edges[3]:
            n2 = gn2_x[r, cols] if per_face_n else gn2
            east = _side_q(qxr[cols], 1.0, h[r], z[r], cols - 1, max(cols - 2, 0), cols > 1, n2, edge_slope,
                           inv_dx, g_dt, dt, h_min)
        qxr[0], qxr[cols] = west, east
        k = r + 1
        n_k = 0
        if k < rows:
            qk = qy[k]
            active_tiles(flow, now, k, act_k)
            for w in range(y_now.size):
                y_now[w] = act_r[w] & act_k[w]
            dense_y = covers(y_now, full)
            if dense_y:  # a wet grid's rows: the runs are the whole row, with no scan (and all of row k's levels
                # come from the face loop below)
                n_k = n_y = 1
                run_k[0, 0], run_k[1, 0], run_y[0, 0], run_y[1, 0] = 0, cols, 0, cols
            else:
                if k + 1 < rows:  # the row after next: ask for its tiles' lines now (``fill`` is free here)
                    active_tiles(flow, now, k + 1, fill)
                    _prefetch_tiles(fill, h[k + 1], z[k + 1], qx[k + 1], qy[k + 1])
                n_k = tile_runs(act_k, cols, 1, run_k[0], run_k[1])
                n_y = tile_runs(y_now, cols, 0, run_y[0], run_y[1])
                # row k's levels: in the face loop below on the faces' runs, here on the rest of its runs
                _row_levels_between(z[k], h[k], e_k, z_k, h_k, run_k, n_k, run_y, n_y)
            if centred and n_y and not dense_prev:  # old discharges above row r where the faces above it were
                # not computed: unchanged
                for w in range(fill.size):
                    fill[w] = y_now[w] & ~y_prev[w]
                n_fill = tile_runs(fill, cols, 0, run_fill[0], run_fill[1])
                top = qy[r]
                for i in range(n_fill):
                    a, e = run_fill[0, i], run_fill[1, i]
                    _copy(top[a:e], prev_old[a:e])
            nxt = seam_old[b + 1, 1] if k == r1 else qy[k + 1]
            for i in range(n_y):
                a, e = run_y[0, i], run_y[1, i]
                nk = gn2_y[k][a:e] if per_face_n else gn2_y[0]
                _y_faces(e_r[a:e], z_r[a:e], h_r[a:e], z[k][a:e], h[k][a:e], e_k[a:e], z_k[a:e], h_k[a:e], qk[a:e],
                         cur_old[a:e], nk, per_face_n, fk, dt32, h_min32, centred, prev_old[a:e], nxt[a:e], w_self,
                         w_side, g_dt_dy32)
        else:
            if not open_edges[1]:
                for c in range(cols):
                    qy[rows, c] = 0.0
            else:
                inner = max(rows - 2, 0)
                _edge_row(qy[rows], 1.0, h[rows - 1], z[rows - 1], h[inner], z[inner], rows > 1,
                          gn2_y[rows if per_face_n else 0], per_face_n, gn2, edge_slope, inv_dy, g_dt, dt, h_min)
        if r > r0 or b == 0:
            if n_r == 0:  # every face of the row is zero: nothing to limit
                limited[r] = _DRY_AROUND
            else:
                lim = 0
                for i in range(n_r):
                    a, e = run_r[0, i], run_r[1, i]
                    lim = max(lim, _drain_factor(h_row[a:e], qxr[a:e + 1], qy[r][a:e], qy[r + 1][a:e], f[r][a:e],
                                                 dt_dx, dt_dy))
                limited[r] = lim
        if k < rows:
            prev_old, cur_old = cur_old, prev_old
            e_r, e_k, z_r, z_k, h_r, h_k = e_k, e_r, z_k, z_r, h_k, h_r
            act_r, act_k, y_now, y_prev = act_k, act_r, y_prev, y_now
            run_r, run_k = run_k, run_r
            n_r, dense_prev = n_k, dense_y


@njit(inline="always", **_JIT)
def _widen(zr, hr, e32, z32, h32, q_top, prev_old, centred, lo, hi, lo_k, hi_k):
    """Row r's float32 levels (and, when ``centred``, the old discharges on its upper faces) on the columns of
    [lo_k, hi_k) outside [lo, hi), from the arrays: there row r is walls, and its upper faces zero."""
    for a, e in ((lo_k, min(lo, hi_k)), (max(hi, lo_k), hi_k)):
        if a < e:
            _levels32(zr[a:e], hr[a:e], e32[a:e], z32[a:e], h32[a:e])
            if centred:
                _copy(q_top[a:e], prev_old[a:e])


@njit(**_JIT_ROWS)
def _flux_block_spans(b, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope,
                starts, span, seam_old, f, limited, row_max, dt, dx, dy, h_min, theta, rows32, rows_q, row_qx):
    """Pass 1 on one block of rows, top to bottom, on the rows' spans (``rows32``, ``rows_q``, ``row_qx``: the
    thread's row buffers): for a grid where water may flow nearly everywhere, the tiles' bookkeeping costs more
    than it saves (see ``Simulation``).

    Faces whose cells are all no deeper than ``h_min`` (judged from the row
    maxima of depth) are set to zero without computing them, unless a row
    next to them was ``_DRY_AROUND`` in the last step (``limited`` is read
    before this pass rewrites it): then they are zero already.  Each row is
    worked on its ``span`` (the columns from its first to its last open
    cell): faces beyond it have a wall on one side, stay zero and are not
    touched.  The float32 levels of a row are made on its span, and on the
    next row's span where the two rows' faces are computed.
    """
    rows, cols = h.shape
    g_dt = G_MPS2 * dt
    g_dt_dx32, g_dt_dy32 = np.float32(g_dt / dx), np.float32(g_dt / dy)
    inv_dx, inv_dy = 1.0 / dx, 1.0 / dy
    dt_dx, dt_dy = dt / dx, dt / dy
    w_self, w_side = np.float32(theta), np.float32(0.5 * (1.0 - theta))
    centred = theta < 1.0
    dt32, h_min32 = np.float32(dt), np.float32(h_min)
    fk = _friction_coefficients(_F32_ONE if per_face_n else np.float32(dt * gn2))
    r0, r1 = starts[b], starts[b + 1]
    e_r, z_r, e_k, z_k = rows32[0][:cols], rows32[1][:cols], rows32[2][:cols], rows32[3][:cols]
    h_r, h_k = rows32[4][:cols], rows32[5][:cols]
    x_new, prev_old, cur_old = row_qx[:cols + 1], rows_q[0][:cols], rows_q[1][:cols]
    lo, hi = span[r0, 0], span[r0, 1]
    _levels32(z[r0][lo:hi], h[r0][lo:hi], e_r[lo:hi], z_r[lo:hi], h_r[lo:hi])
    _north_of_block(b, z, h, qy, gn2_y, gn2, per_face_n, open_edges, edge_slope, seam_old, prev_old, inv_dy, g_dt,
                    dt, h_min)
    for r in range(r0, r1):
        qxr, h_row = qx[r], h_r
        lo, hi = span[r, 0], span[r, 1]
        if row_max[r] > h_min:
            nr = gn2_x[r][lo:hi + 1] if per_face_n else gn2_x[0]
            _x_faces(e_r[lo:hi], z_r[lo:hi], h_r[lo:hi], qxr[lo:hi + 1], x_new[lo:hi + 1], nr, per_face_n, fk, dt32,
                     h_min32, centred, w_self, w_side, g_dt_dx32)
        elif limited[r] != _DRY_AROUND:  # (still last step's: then these faces were zeroed and stayed so)
            inner = qxr[lo + 1:hi]  # a view from 0: see _continuity_block
            for c in range(inner.size):
                inner[c] = 0.0
        west = east = 0.0  # closed edges carry nothing; open ones read their old discharge
        if open_edges[2]:
            n2 = gn2_x[r, 0] if per_face_n else gn2
            west = _side_q(qxr[0], -1.0, h[r], z[r], 0, min(1, cols - 1), cols > 1, n2, edge_slope, inv_dx, g_dt,
                           dt, h_min)
        if open_edges[3]:
            n2 = gn2_x[r, cols] if per_face_n else gn2
            east = _side_q(qxr[cols], 1.0, h[r], z[r], cols - 1, max(cols - 2, 0), cols > 1, n2, edge_slope,
                           inv_dx, g_dt, dt, h_min)
        qxr[0], qxr[cols] = west, east
        k = r + 1
        if k < rows:
            qk = qy[k]
            lo_k, hi_k = span[k, 0], span[k, 1]
            if max(row_max[r], row_max[k]) > h_min:
                # row r's levels and the old discharges above it where row k's span passes row r's
                _widen(z[r], h[r], e_r, z_r, h_r, qy[r], prev_old, centred, lo, hi, lo_k, hi_k)
                nk = gn2_y[k][lo_k:hi_k] if per_face_n else gn2_y[0]
                nxt = seam_old[b + 1, 1] if k == r1 else qy[k + 1]
                _y_faces(e_r[lo_k:hi_k], z_r[lo_k:hi_k], h_r[lo_k:hi_k], z[k][lo_k:hi_k], h[k][lo_k:hi_k], e_k[lo_k:hi_k],
                         z_k[lo_k:hi_k], h_k[lo_k:hi_k], qk[lo_k:hi_k], cur_old[lo_k:hi_k], nk, per_face_n, fk,
                         dt32, h_min32, centred, prev_old[lo_k:hi_k], nxt[lo_k:hi_k], w_self, w_side, g_dt_dy32)
            else:
                if k + 1 < rows and row_max[k + 1] > h_min:  # the faces below row k come next: they need these
                    if centred:
                        _copy(qk[lo_k:hi_k], cur_old[lo_k:hi_k])
                    _levels32(z[k][lo_k:hi_k], h[k][lo_k:hi_k], e_k[lo_k:hi_k], z_k[lo_k:hi_k], h_k[lo_k:hi_k])
                if limited[r] != _DRY_AROUND and limited[k] != _DRY_AROUND:  # else zeroed last step, as above
                    zeros = qk[lo_k:hi_k]
                    for c in range(zeros.size):
                        zeros[c] = 0.0
            prev_old, cur_old = cur_old, prev_old
            e_r, e_k, z_r, z_k, h_r, h_k = e_k, e_r, z_k, z_r, h_k, h_r
        else:
            if not open_edges[1]:
                for c in range(cols):
                    qy[rows, c] = 0.0
            else:
                inner = max(rows - 2, 0)
                _edge_row(qy[rows], 1.0, h[rows - 1], z[rows - 1], h[inner], z[inner], rows > 1,
                          gn2_y[rows if per_face_n else 0], per_face_n, gn2, edge_slope, inv_dy, g_dt, dt, h_min)
        if r > r0 or b == 0:
            above = row_max[r - 1] if r > 0 else 0.0
            below = row_max[r + 1] if r + 1 < rows else 0.0
            if max(above, row_max[r], below) > h_min:
                limited[r] = _drain_factor(h_row[lo:hi], qxr[lo:hi + 1], qy[r][lo:hi], qy[r + 1][lo:hi], f[r][lo:hi],
                                           dt_dx, dt_dy)
            else:  # every face of the row is zero (its levels were not even made): nothing to limit
                limited[r] = _DRY_AROUND


@njit(inline="always", **_JIT)
def _copy(source, target):
    """target[:] = source, for row views of one length (a loop from 0, so that it vectorises)."""
    for c in range(source.size):
        target[c] = source[c]


@njit(**_JIT_ROWS)
def _save_old_seam(qy, starts, seam_old, b):
    """Old discharges on the two face rows at the top of block b (centred scheme), before pass 1 of block b-1."""
    for c in range(qy.shape[1]):
        seam_old[b, 0, c] = qy[starts[b], c]
        seam_old[b, 1, c] = qy[starts[b] + 1, c]


@njit(**_JIT_ROWS)
def _totals(tally):
    """Sums of the per-row tallies (gains, sink demand, capped, clamped, edge outflow, drained), the largest depth
    (m) and whether all are finite (a tuple of numbers, so that returning it allocates nothing)."""
    gains = wants = capped = clamped = edge = drained = deepest = 0.0
    finite = True
    for r in range(tally.shape[0]):
        gains += tally[r, 0]
        wants += tally[r, 1]
        capped += tally[r, 2]
        clamped += tally[r, 3]
        edge += tally[r, 4]
        drained += tally[r, 6]
        deepest = max(deepest, tally[r, 5])
        finite = finite and math.isfinite(tally[r, 5])
    for total in (gains, wants, capped, clamped, edge, drained):
        finite = finite and math.isfinite(total)
    return gains, wants, capped, clamped, edge, drained, deepest, finite


@njit(**_JIT_ROWS)
def _seam_block(b, h, qx, qy, f, limited, starts, seam, dt, dx, dy):
    """Between pass 1 of blocks b-1 and b and pass 2 of either: block b's seam.

    The drain factors of its first row (whose upper faces block b-1 computes)
    and raw copies of those faces; the last block also copies the bottom edge.
    """
    rows, cols = h.shape
    r0 = starts[b]
    for c in range(cols):
        seam[b, c] = qy[r0, c]
    if b > 0:
        limited[r0] = _drain_factor(h[r0], qx[r0], qy[r0], qy[r0 + 1], f[r0], dt / dx, dt / dy)
    if b == starts.size - 2:
        for c in range(cols):
            seam[b + 1, c] = qy[rows, c]


@njit(inline="always", **_JIT)
def _no_flags(tiles, out):
    """A row's flags where it holds no water deeper than h_min (``tiles``), or all set (on spans: the flags are
    not kept, and the first steps back on tiles must compute every face)."""
    fill = np.uint64(0) if tiles else _ALL_TILES
    for w in range(out.size):
        out[w] = fill


@njit(**_JIT_ROWS)
def _continuity_block(b, h, qx, qy, f, limited, active, starts, span, seam, src, src_uniform, per_cell_src, cells,
                      has_sinks, sink_store, drains, src_dt, dt, dx, dy, h_min, t_end, arrival_depth, max_depth,
                      max_speed, arrival, tally, rows32, rows_q, rows64, flow, now, tiles):
    """Pass 2 on one block of rows, top to bottom (``rows32``, ``rows_q``, ``rows64``: the thread's row buffers).

    A limited flux is rounded to the storage type once and that value is used
    by both cells of the face.  Faces on block seams come from the raw copies
    in ``seam``; the block below owns (writes) them.  Faces between rows with
    no limited cell are left as they are.  Loops are kept short (few arrays
    each) so that they vectorise, and run on each row's ``span``.  A row that
    holds no water, whose faces pass 1 left at zero (``_DRY_AROUND``) and that
    gets no source keeps every number: only its tallies are zeroed.  With
    ``cells`` (``soil`` >= 0) the row's source is rain by zone minus
    infiltration, made here from the depth about to be updated.  ``drains``
    (m/s, the grid's shape; else 0 columns wide): after the trackers have
    read the new depth, each cell gives up to ``drains`` x ``src_dt`` of it
    (the row's sum in the tally).
    """
    rows, cols = h.shape
    dt_dx, dt_dy = dt / dx, dt / dy
    r0, r1 = starts[b], starts[b + 1]
    bot_seam, new32, high32 = rows_q[2][:cols], rows32[6][:cols], rows32[7][:cols]
    pre, buf = rows64[0][:cols], rows64[1][:cols]
    flags, h_min32 = flow[1 - now], np.float32(h_min)  # the next step's flags, over the last step's (``tiles``)
    deep = rows64[9].view(np.uint8)
    words = flow.shape[2]
    moving = rows64[7].view(np.uint64)[:words]  # a row's tiles with water deeper than h_min (``tiles``)
    run_lo, run_hi = rows64[8].view(np.int64)[:32 * words + 1], rows64[8].view(np.int64)[32 * words + 1:64 * words + 2]
    for r in range(r0, r1):
        if limited[r] == _DRY_AROUND and (
                tally[r, 5] == 0.0 and cells.row_rain[r] <= 0.0 if cells.soil >= 0
                else not per_cell_src and src_uniform == 0.0) and (tally[r, 5] == 0.0 or drains.shape[1] != cols):
            # (drains take from a row that holds water even when nothing flows or rains on it)
            tally[r, 6] = 0.0
            for i in range(5):  # no face carries water and no source adds or takes any (soils take only water
                # there is, so a row with some may be skipped only where nothing rains on it and it holds none):
                # nothing changes, not even the row's largest depth
                tally[r, i] = 0.0
            _no_flags(tiles, flags[r])
            continue
        fr, hr, qxr, act = f[r], h[r], qx[r], active[r]
        lo, hi = span[r, 0], span[r, 1]
        here_limited = limited[r] > 0
        top = qy[r]
        if r == r0:
            sb = seam[b]
            if r == 0:
                for c in range(cols):
                    raw, here = sb[c], fr[c]
                    top[c] = raw * (_F32_ONE if raw > 0.0 else here)
            elif here_limited or limited[r - 1] > 0:
                fu = f[r - 1]
                for c in range(cols):
                    raw, up, here = sb[c], fu[c], fr[c]
                    top[c] = raw * (up if raw > 0.0 else here)
        k = r + 1
        if k == rows:
            bot = qy[k]
            for c in range(cols):
                raw, here = bot[c], fr[c]
                bot[c] = raw * (here if raw > 0.0 else _F32_ONE)
        elif k == r1:  # from the raw copy: the block below limits these faces in place
            bot, below, fd = bot_seam, seam[b + 1], f[k]
            if here_limited or limited[k] > 0:
                for c in range(cols):
                    raw, here, down = below[c], fr[c], fd[c]
                    bot[c] = raw * (here if raw > 0.0 else down)
            else:
                for c in range(cols):
                    bot[c] = below[c]
        else:  # in place, through one name: with two, LLVM's overlap check fails and the loop runs scalar
            bot = qy[k]
            if here_limited or limited[k] > 0:
                bs, hs, ds = bot[lo:hi], fr[lo:hi], f[k][lo:hi]  # views from 0: a loop from lo would not vectorise
                for c in range(hi - lo):
                    raw, here, down = bs[c], hs[c], ds[c]
                    bs[c] = raw * (here if raw > 0.0 else down)
        raw = qxr[0]
        qxr[0] = raw * (_F32_ONE if raw > 0.0 else fr[0])
        raw = qxr[cols]
        qxr[cols] = raw * (fr[cols - 1] if raw > 0.0 else _F32_ONE)
        if here_limited:
            xs, fs = qxr[lo:hi], fr[lo:hi]
            for c in range(1, hi - lo):
                raw, west, here = xs[c], fs[c - 1], fs[c]
                xs[c] = raw * (west if raw > 0.0 else here)

        # depth: fluxes, then gains, then sinks capped at the water present; the trackers
        # read float32 copies of the new depth and of the larger of old and new
        # (lowest = min of the bit patterns of the depths before clamping: below 0 where one is negative;
        # highest = max of the new depths' bit patterns with the sign cleared: the row's largest depth, or NaN).
        # The three loops repeat their last lines on purpose: moving them into a helper, even an inlined
        # one, stopped LLVM vectorising the loop (1000 x 1000, one thread: 1.9e8 to 1.2e8 cell updates/s).
        # The loops run on views of the span, from 0: a loop from lo would index with a number that might be
        # negative, and the wrap-around stops LLVM vectorising it.
        n = hi - lo
        hs, xs, ts, bs, acts = hr[lo:hi], qxr[lo:hi + 1], top[lo:hi], bot[lo:hi], act[lo:hi]
        pres, bufs, new32s, high32s = pre[lo:hi], buf[lo:hi], new32[lo:hi], high32[lo:hi]
        if cells.soil >= 0:  # rain by zone and infiltration, from the depth this loop is about to read
            sr = rows64[2][lo:hi]
            net_rain_row(cells, r, lo, hi, hs, src_dt, sr, rows64[3:10])
        else:
            sr = src[r][lo:hi] if per_cell_src else src[0]
        s_uniform = src_uniform * src_dt
        lowest = highest = np.int64(0)
        if per_cell_src:
            for c in range(n):
                rate, wet = sr[c], acts[c]
                s = rate * src_dt if wet else 0.0
                old = hs[c]
                new, a = _depth(old, xs[c], xs[c + 1], ts[c], bs[c], dt_dx, dt_dy, s)
                hs[c], pres[c], new32s[c], high32s[c] = new, a, np.float32(new), np.float32(max(new, old))
                lowest = min(lowest, _f64_bits(a))
                highest = max(highest, _f64_bits(new) & _ABS_BITS)
        elif has_sinks:
            for c in range(n):
                s = s_uniform * acts[c]
                old = hs[c]
                new, a = _depth(old, xs[c], xs[c + 1], ts[c], bs[c], dt_dx, dt_dy, s)
                hs[c], pres[c], new32s[c], high32s[c] = new, a, np.float32(new), np.float32(max(new, old))
                lowest = min(lowest, _f64_bits(a))
                highest = max(highest, _f64_bits(new) & _ABS_BITS)
        else:  # a uniform gain (or none), s_uniform >= 0: no sink's cap, and the depth keeps a until clamped below
            for c in range(n):
                old = hs[c]
                a = _flux_depth(old, xs[c], xs[c + 1], ts[c], bs[c], dt_dx, dt_dy) + s_uniform * acts[c]
                new = max(a, 0.0)
                hs[c], new32s[c], high32s[c] = a, np.float32(new), np.float32(max(new, old))
                lowest = min(lowest, _f64_bits(a))
                highest = max(highest, _f64_bits(new) & _ABS_BITS)

        # tallies: clamped = max(-a, 0), capped = max(want - max(a, 0), 0)
        tally[r, 3] = 0.0
        if lowest < 0:
            if has_sinks:
                for c in range(n):
                    bufs[c] = max(-pres[c], 0.0)
            else:
                for c in range(n):
                    a = hs[c]
                    bufs[c], hs[c] = max(-a, 0.0), max(a, 0.0)
            tally[r, 3] = span_sum(buf, lo, hi)
        tally[r, 2] = 0.0
        if has_sinks:
            if per_cell_src:
                for c in range(n):
                    rate, wet = sr[c], acts[c]
                    want = max(-rate * src_dt, 0.0) if wet else 0.0
                    bufs[c] = max(want - max(pres[c], 0.0), 0.0)
            else:
                want_uniform = max(-s_uniform, 0.0)
                for c in range(n):
                    want = want_uniform * acts[c]
                    bufs[c] = max(want - max(pres[c], 0.0), 0.0)
            tally[r, 2] = span_sum(buf, lo, hi)
            if sink_store.shape[1] == cols and tally[r, 2] > 0.0:  # the sinks took only the water there was:
                # where a store counts what they took (the soils' cumulative depth), it gives back what the cap
                # kept out
                taken = sink_store[r][lo:hi]
                for c in range(n):
                    taken[c] -= bufs[c]
        tally[r, 0] = tally[r, 1] = 0.0
        if per_cell_src:
            for c in range(n):
                rate, wet = sr[c], acts[c]
                bufs[c] = max(rate * src_dt, 0.0) if wet else 0.0
            tally[r, 0] = span_sum(buf, lo, hi)
            for c in range(n):
                rate, wet = sr[c], acts[c]
                bufs[c] = max(-rate * src_dt, 0.0) if wet else 0.0
            tally[r, 1] = span_sum(buf, lo, hi)
        tally[r, 5] = _bits_f64(highest)
        edge = (max(-np.float64(qxr[0]), 0.0) + max(np.float64(qxr[cols]), 0.0)) * dy
        if r == 0:
            for c in range(cols):
                edge += max(-np.float64(top[c]), 0.0) * dx
        if r == rows - 1:
            for c in range(cols):
                edge += max(np.float64(bot[c]), 0.0) * dx
        tally[r, 4] = edge
        _track_depth(new32s, max_depth[r][lo:hi], arrival[r][lo:hi], arrival_depth, t_end)
        tally[r, 6] = 0.0
        if drains.shape[1] == cols and _bits_f64(highest) > 0.0:  # storm drains, after the trackers saw the water
            caps = drains[r][lo:hi]
            for c in range(n):
                take = min(caps[c] * src_dt, hs[c])
                hs[c] -= take
                bufs[c] = take
            tally[r, 6] = span_sum(buf, lo, hi)
        if not tiles:
            _no_flags(tiles, flags[r])
            _track_speed(high32s, xs, ts, bs, max_speed[r][lo:hi], h_min)
            continue
        # speeds only on the tiles with a cell deeper than h_min at the step's start or end (in a storm most
        # of a row is a film, and its speed, 0, leaves the maximum as it is); as in pass 1, the last step's
        # flags count too, read before this row's next flags replace them
        was, will, ms2r = flow[now][r], flags[r], max_speed[r]
        for w in range(moving.size):
            moving[w] = was[w] | will[w]
        if _bits_f64(highest) > h_min:
            row_flags(new32, lo, hi, h_min32, deep, will)
        else:
            row_flags(new32, 0, 0, h_min32, deep, will)
        for w in range(moving.size):
            moving[w] |= will[w]
        for i in range(tile_runs(moving, cols, 0, run_lo, run_hi)):
            a, e = max(run_lo[i], lo), min(run_hi[i], hi)
            if a < e:
                _track_speed(high32[a:e], qxr[a:e + 1], top[a:e], bot[a:e], ms2r[a:e], h_min)


@njit(inline="always", **_JIT)
def _pass1(tiles, b, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old, f,
           limited, row_max, flow, now, dt, dx, dy, h_min, theta, r32, rq, rqx, mk, rn):
    """Pass 1 of block b on the active tiles (``tiles``) or on the rows' spans."""
    if tiles:
        _flux_block(b, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, seam_old, f,
                    limited, flow, now, dt, dx, dy, h_min, theta, r32, rq, rqx, mk, rn)
    else:
        _flux_block_spans(b, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span,
                          seam_old, f, limited, row_max, dt, dx, dy, h_min, theta, r32, rq, rqx)


@njit(**_JIT_ROWS)
def _band(j, bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
          seam, f, limited, active, src, src_uniform, per_cell_src, cells, has_sinks, sink_store, drains, src_dt, dt,
          dx, dy, h_min, theta, t_end, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx,
          rows64, flow, now, tiles, masks, runs):
    """Both passes over the blocks of band ``j``, pass 2 one block behind pass 1.

    Pass 2 of block b waits for pass 1 of block b+1 (the drain factors of its
    first row).  A band's first block (after the first band) and last block
    (before the last band) need the neighbouring band's work: ``_step_bands`` finishes them.
    """
    nb = starts.size - 1
    first, last = bands[j], bands[j + 1] - 1
    centred = theta < 1.0
    r32, rq, rqx, r64, mk, rn = rows32[j], rows_q[j], rows_qx[j], rows64[j], masks[j], runs[j]
    row_max = tally[:, 5]
    if centred and first < last:
        _save_old_seam(qy, starts, seam_old, first + 1)
    _pass1(tiles, first, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
                f, limited, row_max, flow, now, dt, dx, dy, h_min, theta, r32, rq, rqx, mk, rn)
    if first == 0:
        _seam_block(0, h, qx, qy, f, limited, starts, seam, dt, dx, dy)
    for b in range(first + 1, last + 1):
        if centred and b < last:
            _save_old_seam(qy, starts, seam_old, b + 1)
        _pass1(tiles, b, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
                    f, limited, row_max, flow, now, dt, dx, dy, h_min, theta, r32, rq, rqx, mk, rn)
        _seam_block(b, h, qx, qy, f, limited, starts, seam, dt, dx, dy)
        if b - 1 > first or first == 0:
            _continuity_block(b - 1, h, qx, qy, f, limited, active, starts, span, seam, src, src_uniform,
                              per_cell_src, cells, has_sinks, sink_store, drains, src_dt, dt, dx, dy, h_min, t_end,
                              arrival_depth, max_depth, max_speed, arrival, tally, r32, rq, r64, flow, now, tiles)
    if last == nb - 1 and (last > first or first == 0):
        _continuity_block(last, h, qx, qy, f, limited, active, starts, span, seam, src, src_uniform, per_cell_src, cells,
                          has_sinks, sink_store, drains, src_dt, dt, dx, dy, h_min, t_end, arrival_depth, max_depth,
                          max_speed, arrival, tally, r32, rq, r64, flow, now, tiles)


@njit(parallel=True, **_JIT)
def _step_bands(bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
                seam, f, limited, active, src, src_uniform, per_cell_src, cells, has_sinks, sink_store, drains, src_dt,
                dt, dx, dy, h_min, theta, t_end, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q,
                rows_qx, rows64, flow, now, tiles, masks, runs):
    """One step on threads: each band of blocks on its own, then the blocks at the bands' seams; the step's ``_totals``.

    The blocks on either side of a seam between bands are ``_SEAM_ROWS`` rows
    each, so the part left to the calling thread after the bands is small and
    the thread pool wakes once a step.
    """
    nbands = bands.size - 1
    if theta < 1.0:  # seams between bands: a neighbour may rewrite these faces before the band reads them
        for j in range(1, nbands):
            _save_old_seam(qy, starts, seam_old, bands[j])
    for j in prange(nbands):
        _band(j, bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
              seam, f, limited, active, src, src_uniform, per_cell_src, cells, has_sinks, sink_store, drains, src_dt,
              dt, dx, dy, h_min, theta, t_end, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q,
              rows_qx, rows64, flow, now, tiles, masks, runs)
    return _band_seams(bands, h, qx, qy, f, limited, active, starts, span, seam, src, src_uniform, per_cell_src,
                       cells, has_sinks, sink_store, drains, src_dt, dt, dx, dy, h_min, t_end, arrival_depth,
                       max_depth, max_speed, arrival, tally, rows32, rows_q, rows64, flow, now, tiles)


@njit(**_JIT_ROWS)
def _band_seams(bands, h, qx, qy, f, limited, active, starts, span, seam, src, src_uniform, per_cell_src, cells,
                has_sinks, sink_store, drains, src_dt, dt, dx, dy, h_min, t_end, arrival_depth, max_depth, max_speed,
                arrival, tally, rows32, rows_q, rows64, flow, now, tiles):
    """After every band's ``_band``: the blocks at the seams between bands (with band 0's row buffers); the
    step's ``_totals``."""
    for j in range(1, bands.size - 1):
        _seam_block(bands[j], h, qx, qy, f, limited, starts, seam, dt, dx, dy)
        for b in range(bands[j] - 1, bands[j] + 1):
            _continuity_block(b, h, qx, qy, f, limited, active, starts, span, seam, src, src_uniform, per_cell_src, cells,
                              has_sinks, sink_store, drains, src_dt, dt, dx, dy, h_min, t_end, arrival_depth,
                              max_depth, max_speed, arrival, tally, rows32[0], rows_q[0], rows64[0], flow, now, tiles)
    return _totals(tally)


@njit(**_JIT_ROWS)
def _step_serial(bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
                 seam, f, limited, active, src, src_uniform, per_cell_src, cells, has_sinks, sink_store, drains,
                 src_dt, dt, dx, dy, h_min, theta, t_end, arrival_depth, max_depth, max_speed, arrival, tally, rows32,
                 rows_q, rows_qx, rows64, flow, now, tiles, masks, runs):
    """One step on the calling thread: all blocks as one band; the step's ``_totals``."""
    _band(0, bands, z, h, qx, qy, gn2_x, gn2_y, gn2, per_face_n, open_edges, edge_slope, starts, span, seam_old,
          seam, f, limited, active, src, src_uniform, per_cell_src, cells, has_sinks, sink_store, drains, src_dt, dt,
          dx, dy, h_min, theta, t_end, arrival_depth, max_depth, max_speed, arrival, tally, rows32, rows_q, rows_qx,
          rows64, flow, now, tiles, masks, runs)
    return _totals(tally)


@njit(inline="always", **_JIT)
def _flux_depth(h_old, q_west, q_east, q_north, q_south, dt_dx, dt_dy):
    """Depth (m) of one cell after the fluxes in and out."""
    div = dt_dx * (np.float64(q_west) - np.float64(q_east)) + dt_dy * (
        np.float64(q_north) - np.float64(q_south))
    return h_old + div


@njit(inline="always", **_JIT)
def _inflow_depth(h_old, q_west, q_east, q_north, q_south, dt_dx, dt_dy, s):
    """Depth (m) of one cell after the fluxes in and out and the gain of a source depth ``s`` (sinks not yet taken)."""
    return _flux_depth(h_old, q_west, q_east, q_north, q_south, dt_dx, dt_dy) + max(s, 0.0)


@njit(inline="always", **_JIT)
def _depth(h_old, q_west, q_east, q_north, q_south, dt_dx, dt_dy, s):
    """(new depth, depth before sinks) in m of one cell: fluxes in and out, gains, then sinks.

    ``s`` is the source depth of the step (m, negative for sinks); a sink takes
    at most the water present; a round-off negative is set to zero.
    """
    a = _inflow_depth(h_old, q_west, q_east, q_north, q_south, dt_dx, dt_dy, s)
    return max(a - min(max(-s, 0.0), max(a, 0.0)), 0.0), a


@njit(inline="always", **_JIT)
def _track_depth(new32, md, at, arrival_depth, t_end):
    """Running maximum of depth (m); ``at``: first time above ``arrival_depth`` (s).

    ``new32`` is a float32 copy of the depth at the step's end, so that the
    loop runs on float32 alone.  Arrival is read and written only in rows
    where some cell's running maximum passed the threshold in this step.
    """
    arrival32, t_end32 = np.float32(arrival_depth), np.float32(t_end)
    crossed = np.int32(0)  # int32, so that the loop runs in 16-lane vectors
    for c in range(new32.size):
        old = md[c]
        new = max(old, new32[c])
        md[c] = new
        crossed = max(crossed, np.int32((new > arrival32) & (old <= arrival32)))
    if crossed:
        for c in range(new32.size):
            if md[c] > arrival32 and np.isnan(at[c]):
                at[c] = t_end32


@njit(inline="always", **_JIT)
def _track_speed(high32, qxr, top, bot, ms2, h_min):
    """Running maximum of squared speed (m2/s2) where a cell is deeper than ``h_min`` at the step's start or end.

    ``high32`` is the larger of the depths at the step's start and end (a
    float32 copy).  Speed is |mean face discharge| / ``high32``: a cell that
    drains or fills in the step would otherwise divide the step's discharge
    by a film.  Elsewhere the speed counts as 0, which leaves the maximum as
    it is, so that the caller may skip such cells.
    """
    h_min32, half = np.float32(h_min), np.float32(0.5)
    for c in range(high32.size):
        hn = high32[c]
        ux = half * (np.float32(qxr[c]) + np.float32(qxr[c + 1]))
        uy = half * (np.float32(top[c]) + np.float32(bot[c]))
        wet = max(hn, h_min32)
        speed2 = (ux * ux + uy * uy) / (wet * wet)
        ms2[c] = max(ms2[c], speed2 if hn > h_min32 else np.float32(0.0))


@njit(**_JIT_ROWS)
def _boundary_trackers(h_flat, cells, rows, tally, md, at, arrival_depth, t_end, flags, rows_t, words_t, bits_t):
    """After inflows and held levels have changed their cells' depths: those cells' row maxima, running maximum
    depth and arrival, and their tiles' flags (their water may flow at the next step); the deepest of them.

    One compiled call a step where eight NumPy calls on a few hundred cells cost more in calls than in work.
    """
    deepest = 0.0
    for k in range(cells.size):
        c, r = cells[k], rows[k]
        depth = h_flat[c]
        tally[r, 5] = max(tally[r, 5], depth)
        deepest = max(deepest, depth)
        md[c] = max(np.float64(md[c]), depth)
        if np.isnan(at[c]) and depth > arrival_depth:
            at[c] = t_end
    for k in range(rows_t.size):
        flags[rows_t[k], words_t[k]] |= bits_t[k]
    return deepest


# --------------------------------------------------------------------------------------
# Simulation driver
# --------------------------------------------------------------------------------------


def _blocks(rows: int, cols: int, block_rows: int | None = None) -> tuple[Callable[..., None], np.ndarray,
                                                                          np.ndarray]:
    """(step kernel, row starts of the blocks, first block of each band) for a grid of ``rows`` x ``cols``.

    Each thread takes a band of rows.  The rows between a band's seams are one
    block, or blocks of about ``block_rows`` (the same results to the bit); the
    blocks on either side of a seam between two bands are ``_SEAM_ROWS`` rows,
    as they finish on one thread after the bands.  Blocks a few hundred
    kilobytes large, to keep pass 2 in a core's cache, measured slower: the
    seam copies and first-row drain factors of each block cost more than the
    cache saves (1000 x 1000 on 2 threads: 3.95e8 against 4.39e8 cell updates/s
    with one block per band).  Below ``_SERIAL_CELLS`` cells, or with one
    thread, the step runs on the calling thread: waking the thread pool costs
    more than such a grid's arithmetic.
    """
    per_block = max(1, block_rows or rows)
    nbands = min(numba.get_num_threads(), rows // (4 * _SEAM_ROWS))
    if rows * cols < _SERIAL_CELLS or nbands < 2:
        nb = max(1, round(rows / per_block))
        starts = np.linspace(0, rows, nb + 1).round().astype(np.int64)
        return _step_serial, starts, np.array([0, nb], dtype=np.int64)
    edges = np.linspace(0, rows, nbands + 1).round().astype(np.int64)
    starts, bands = [], []
    for j in range(nbands):
        a, b = int(edges[j]), int(edges[j + 1])
        bands.append(len(starts))
        inner_a = a + _SEAM_ROWS if j > 0 else a
        inner_b = b - _SEAM_ROWS if j < nbands - 1 else b
        if j > 0:
            starts.append(a)
        nb = max(1, round((inner_b - inner_a) / per_block))
        starts.extend(np.linspace(inner_a, inner_b, nb + 1).round().astype(np.int64)[:-1].tolist())
        if j < nbands - 1:
            starts.append(inner_b)
    bands.append(len(starts))
    starts.append(rows)
    return _step_bands, np.asarray(starts, dtype=np.int64), np.asarray(bands, dtype=np.int64)


class Simulation:
    """A flood run on a :class:`FloodGrid`.

    ``boundary``: ``"closed"``, ``"open"``, a mapping such as ``{"east": "open"}``
    or an :class:`Edges`.  ``source_rate(t_s)`` gives the net source (m/s,
    rain positive, infiltration/drainage negative) as a scalar or a per-cell
    array; it is called once per step, at the step's mid time.  A number in
    its place is a constant rate on every active cell: with no inflows or
    held levels, :meth:`run_until` then runs its steps in compiled loops
    (``quiet_steps``; the same results to the bit).  Or
    ``cell_sources`` (not both): rain by zone and infiltration by land class,
    which the step applies itself as it updates the depths (one pass over the
    grid instead of two).  ``dtype`` is the storage type of the discharges
    (the face update itself runs in float32).

    ``source_step_s`` (with ``cell_sources``): rain and infiltration are
    applied once every so many seconds of simulated time (at the first step
    that reaches it, and at every step a caller settles: :meth:`step`),
    over the whole time since they were last applied: the rain as its rate
    then (its mean where the series changes within that time), the soil's
    take solved exactly over it.  Between, a step moves water only where
    faces carry it, and rows that hold only a film are left as they are.
    0 applies them at every step.

    A sink takes at most the water a cell holds after the step's fluxes.
    ``drain_capacity_m_s``: storm drains, the most they take per cell (m/s).
    They take the water standing on a cell, up to their capacity over the
    time since they last took, whenever the sources are applied (every
    step without ``cell_sources``), after the step's fluxes and sources and
    before inflows and held levels: each row in pass 2, right after its
    depths are updated, while they are in the core's cache.

    Where the sink's amount was also added to a store (a soil's cumulative
    infiltration: the cell sources' own, or ``sink_store`` (m) for a
    ``source_rate`` whose sinks are a soil's alone), the store gives back
    what the cap kept out, so that it holds what was taken.
    """

    def __init__(self, grid: FloodGrid, *, boundary: str | Mapping[str, str] | Edges = "closed",
                 inflows: Sequence[DischargeInflow] = (), level_boundaries: Sequence[LevelBoundary] = (),
                 source_rate: SourceRate | None = None, cell_sources: ZonedSources | None = None,
                 initial_depth_m: float | np.ndarray | None = None,
                 alpha: float = 0.5, theta: float = 0.8, max_dt_s: float = 10.0, h_min_m: float = 1e-3,
                 arrival_depth_m: float = 0.1, dtype: type = np.float32, source_step_s: float = 0.0,
                 sink_store: np.ndarray | None = None, drain_capacity_m_s: np.ndarray | None = None) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta must be in [0, 1], got {theta}")
        if not (max_dt_s > 0 and h_min_m > 0 and arrival_depth_m > 0):
            raise ValueError("max_dt_s, h_min_m and arrival_depth_m must be positive")
        if not (math.isfinite(source_step_s) and source_step_s >= 0):
            raise ValueError(f"source_step_s must be finite and >= 0, got {source_step_s}")
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError("dtype must be float32 or float64")
        self.grid = grid
        self.edges = Edges.parse(boundary)
        self.alpha, self.theta, self.max_dt_s = float(alpha), float(theta), float(max_dt_s)
        self.h_min_m, self.arrival_depth_m = float(h_min_m), float(arrival_depth_m)
        rows, cols = grid.shape
        if source_rate is not None and cell_sources is not None:
            raise ValueError("give source_rate or cell_sources, not both")
        if cell_sources is not None and cell_sources.shape != (rows, cols):
            raise ValueError(f"cell_sources are {cell_sources.shape}, the grid is {(rows, cols)}")
        if source_rate is not None and not callable(source_rate) and not isinstance(source_rate, Real):
            raise ValueError(f"source_rate must be a function of time or a number (m/s), got {type(source_rate)}")
        self.source_rate = source_rate
        self.cell_sources = cell_sources
        self.source_step_s = float(source_step_s)
        if sink_store is not None and (np.shape(sink_store) != (rows, cols) or sink_store.dtype != np.float64
                                       or not sink_store.flags.c_contiguous):
            raise ValueError(f"sink_store must be a C-contiguous float64 array of the grid's shape {(rows, cols)}")
        self._sink_store = sink_store if sink_store is not None else np.zeros((1, 1))
        self._drains = None
        if drain_capacity_m_s is not None:
            capacity = np.ascontiguousarray(drain_capacity_m_s, dtype=np.float64)
            if capacity.shape != (rows, cols) or not np.all(np.isfinite(capacity)) or np.any(capacity < 0):
                raise ValueError(f"drain_capacity_m_s must be finite, >= 0 and of the grid's shape {(rows, cols)}")
            self._drains = np.where(grid.active, capacity, 0.0)
        self._no_drains = np.zeros((1, 0))  # the step's ``drains`` when they take nothing (no row is 0 wide)
        self.drained_m3 = 0.0
        """Water the drains took so far (m3; also in the balance's sink out)."""
        self._sources_from_s = 0.0  # the time up to which the cell sources have been applied
        self._z = _staggered((rows, cols), np.float64, 0)
        self._z[...] = grid.kernel_bed()
        self._area = grid.cell_area_m2
        self._min_d = min(grid.dx_m, grid.dy_m)
        self._active = grid.active.astype(np.uint8)
        self._n_active = int(grid.active.sum())
        self._inflows = place(inflows, grid.z_m, grid.active)
        self._levels = place(level_boundaries, grid.z_m, grid.active)
        self._inflow_cells = joined_cells(self._inflows)
        self._boundary_flat = np.unique(np.concatenate(
            [p.flat for p in (*self._inflows, *self._levels)] or [np.zeros(0, np.int64)]))
        self._boundary_rows = self._boundary_flat // cols

        h = _staggered((rows, cols), np.float64, 1)
        if initial_depth_m is not None:
            h[...] = initial_depth_m
        if not (np.all(np.isfinite(h[grid.active])) and np.all(h[grid.active] >= 0)):
            raise ValueError("initial depth must be finite and >= 0")
        h[~grid.active] = 0.0
        hold_levels(h.ravel(), self._levels, 0.0, self._area)
        self.h = h
        self.qx = _staggered((rows, cols + 1), dtype, 2)
        self.qy = _staggered((rows + 1, cols), dtype, 3)
        self.t_s = 0.0
        self.steps = 0
        self.cell_updates = 0
        self.last_dt_s = math.nan

        friction = grid.face_friction()
        self._per_face_n = friction is not None
        if friction is None:
            self._gn2 = G_MPS2 * float(grid.manning_n) ** 2
            self._gn2_x = self._gn2_y = np.zeros((1, 1), dtype=np.float32)
        else:
            self._gn2 = 0.0
            self._gn2_x, self._gn2_y = (a.astype(np.float32) for a in friction)
        self._open = self.edges.open_flags()
        self._edge_slope = -1.0 if self.edges.slope is None else float(self.edges.slope)
        self._kernel, self._starts, self._bands = _blocks(rows, cols)
        # On threads where the grid is large enough, or on the calling thread where that is quicker now
        # (``kernel_choice``: another program holding a core); both ways give the same bits.
        self._layouts = {self._kernel: (self._starts, self._bands)}
        if self._kernel is _step_bands:
            self._layouts[_step_serial] = (np.array([0, rows], dtype=np.int64), np.array([0, 1], dtype=np.int64))
        self._kernels = KernelChoice(self._kernel, _step_serial if self._kernel is _step_bands else None)
        self._team: tuple[np.ndarray, np.ndarray] | None = None  # ``quiet_steps.team_control``, made on first use
        self._quiet_run_steps = 8  # the first compiled run of steps (``_quiet_steps_to``), then sized by its time
        self._span = _spans(grid.active)
        nb = self._starts.size - 1
        self._seam = np.zeros((nb + 1, cols), dtype=dtype)
        self._seam_old = np.zeros((nb + 1, 2, cols), dtype=dtype)
        nbands = self._bands.size - 1  # row buffers of each thread's band (the kernels allocate nothing)
        self._rows32 = _row_buffers(nbands, 8, cols, np.float32, 4)
        self._rows_q = _row_buffers(nbands, 3, cols, dtype, 5)
        self._rows_qx = _row_buffers(nbands, 1, cols + 1, dtype, 6)[:, 0]
        self._rows64 = _row_buffers(nbands, 10, cols, np.float64, 7)  # 3 to 6: the soil solves' scratch; 9: tiles
        self._f = _staggered((rows, cols), np.float32, 4)
        self._f[...] = 1.0
        words = word_count(cols)
        self._flow = np.full((2, rows, words), _ALL_TILES)  # ``tiles``; the first step computes every face
        self._flow[0] = flow_flags(h, self.h_min_m)
        self._now = 0
        self._tiles = True
        self._boundary_tiles = tile_marks(self._boundary_flat, cols)
        self._masks = np.zeros((nbands, 6, words), dtype=np.uint64)
        self._runs = np.zeros((nbands, 4, 2, tile_count(cols) + 1), dtype=np.int64)
        self._limited = np.zeros(rows, dtype=np.int64)
        self._tally = np.zeros((rows, _N_TALLY))
        self._tally[:, 5] = h.max(axis=1)
        self._h_max = float(h.max())
        self._no_src = np.zeros((1, 1))

        self._max_depth = _staggered((rows, cols), np.float32, 5)
        self._max_depth[...] = h
        self._max_speed2 = _staggered((rows, cols), np.float32, 6)
        self._arrival = _staggered((rows, cols), np.float32, 7)
        self._arrival[...] = np.where(h > self.arrival_depth_m, 0.0, np.nan)

        self._initial_storage = self.storage_m3()
        self._totals = dict.fromkeys(
            ("source_in", "inflow", "level_in", "clamp_added", "sink_out", "sink_capped",
             "edge_outflow", "level_out", "pumped"), 0.0)

    # ---- results ---------------------------------------------------------------------

    def storage_m3(self) -> float:
        """Water held in the domain now (m3)."""
        return float(self.h.sum()) * self._area

    @property
    def balance(self) -> MassBalance:
        """Volumes since the start and the relative error of the balance."""
        t = self._totals
        return MassBalance(self.t_s, self._initial_storage, self.storage_m3(), t["source_in"], t["inflow"],
                           t["level_in"], t["clamp_added"], t["sink_out"], t["sink_capped"],
                           t["edge_outflow"], t["level_out"], t["pumped"])

    @property
    def state(self) -> FloodState:
        """Read-only views of the live arrays (copy them to keep them past the next step)."""
        return FloodState(_read_only(self.h), _read_only(self.qx), _read_only(self.qy), self.t_s)

    @property
    def max_depth(self) -> np.ndarray:
        """Largest depth reached in each cell so far (m, float32, read-only)."""
        return _read_only(self._max_depth)

    @property
    def max_speed(self) -> np.ndarray:
        """Largest cell speed reached so far (m/s): |q| / h, h the larger depth of a step's start and end."""
        return np.sqrt(self._max_speed2)

    @property
    def arrival_time_s(self) -> np.ndarray:
        """First time each cell was deeper than ``arrival_depth_m`` (s); NaN if never (read-only)."""
        return _read_only(self._arrival)

    # ---- stepping --------------------------------------------------------------------

    def next_dt_s(self, limit_s: float = math.inf) -> float:
        """Stable step: alpha min(dx, dy) / sqrt(g h_max), capped by max_dt_s and ``limit_s``."""
        dt = self.max_dt_s
        if self._h_max > 0:
            dt = min(dt, self.alpha * self._min_d / math.sqrt(G_MPS2 * self._h_max))
        return min(dt, limit_s)

    def _source(self, t_s: float) -> tuple[np.ndarray, float, bool]:
        """(per-cell rates or a dummy, uniform rate, whether per-cell) in m/s at ``t_s``."""
        if self.source_rate is None:
            return self._no_src, 0.0, False
        rate = self.source_rate(t_s) if callable(self.source_rate) else float(self.source_rate)
        if isinstance(rate, float) or np.ndim(rate) == 0:
            return self._no_src, float(rate), False
        arr = np.asarray(rate)
        if arr.shape != self.h.shape:
            raise ValueError(f"source_rate returned shape {arr.shape}, the grid is {self.h.shape}")
        if arr.dtype != np.float64 or not arr.flags.c_contiguous:  # one compiled step, for float64 rates
            arr = np.ascontiguousarray(arr, dtype=np.float64)
        return arr, 0.0, True

    def step(self, dt_s: float, *, settle: bool = False) -> None:
        """Advance by ``dt_s`` (s), which must not exceed :meth:`next_dt_s`.

        ``settle``: apply the cell sources due so far in this step (see
        ``source_step_s``), so that the state after it holds all the rain
        to its end: callers settle at the times they read results.
        """
        dx, dy = self.grid.dx_m, self.grid.dy_m
        t0, t1 = self.t_s, self.t_s + dt_s
        src_dt = dt_s
        every_step = self.source_step_s <= 0.0
        drains = self._no_drains if self._drains is None else self._drains  # they take when the sources apply
        if self.cell_sources is None:
            cells, (src, src_uniform, per_cell) = NO_CELL_SOURCES, self._source(t0 + 0.5 * dt_s)
        elif every_step or settle or t1 - self._sources_from_s >= self.source_step_s * (1.0 - 1e-12):
            t_from = t0 if every_step else self._sources_from_s
            src_dt = dt_s if every_step else t1 - t_from  # (t1 - t0 may differ from dt_s in its last bit)
            cells, (src, src_uniform, per_cell) = self.cell_sources.during(t_from, t1), (self._no_src, 0.0, True)
            self._sources_from_s = t1
        else:  # no source this step: only where faces carry water does anything change
            cells, (src, src_uniform, per_cell) = NO_CELL_SOURCES, (self._no_src, 0.0, False)
            drains = self._no_drains
        kernel = self._kernels.pick()
        starts, bands = self._layouts[kernel]
        started = time.perf_counter()
        *sums, self._h_max, finite = kernel(
            bands, self._z, self.h, self.qx, self.qy, self._gn2_x, self._gn2_y, self._gn2, self._per_face_n,
            self._open, self._edge_slope, starts, self._span, self._seam_old, self._seam, self._f, self._limited,
            self._active, src, src_uniform, per_cell, cells, per_cell or src_uniform < 0.0,
            cells.cumulative if cells.soil > SOIL_NONE else self._sink_store, drains, src_dt, dt_s, dx, dy,
            self.h_min_m, self.theta, t1, self.arrival_depth_m, self._max_depth, self._max_speed2, self._arrival,
            self._tally, self._rows32, self._rows_q, self._rows_qx, self._rows64, self._flow, self._now,
            self._on_tiles(), self._masks, self._runs)
        self._kernels.record(kernel, time.perf_counter() - started)
        self._now = 1 - self._now
        if not finite:
            raise FloatingPointError(f"flood solver produced a non-finite depth at t = {t1:.3f} s; "
                                     "check the sources for NaN, or lower alpha or max_dt_s")
        self._book(sums, dt_s, src_dt, src_uniform, per_cell)
        if self._inflows or self._levels:
            self._boundary_cells(t0, t1)
        if drains is not self._no_drains:  # the step's pass 2 drained each row after updating it
            taken = float(sums[5]) * self._area
            self._totals["sink_out"] += taken
            self.drained_m3 += taken
        self.t_s = t1
        self.steps += 1
        self.cell_updates += self.h.size
        self.last_dt_s = dt_s

    def _on_tiles(self) -> bool:
        """Whether this step's pass 1 works on the active tiles (else on the rows' spans, as before tiles).

        Decided every ``_TILES_EVERY`` steps from the share of the domain's
        cells deeper than h_min: the tiles pay where water flows on a small
        part of the grid (a storm on a city: 3 % of Carlisle's cells in its
        wettest half hour) and cost 10-20 % where it flows nearly everywhere
        (a 200 x 200 crop under 100 mm/h).  Both ways give the same bits.
        """
        if self.steps % _TILES_EVERY == 0:
            deep = np.count_nonzero(self.h > self.h_min_m)
            self._tiles = deep < _TILES_BELOW * max(self._n_active, 1)
        return self._tiles

    def _book(self, sums: np.ndarray, dt_s: float, src_dt_s: float, src_uniform: float, per_cell: bool) -> None:
        """Add the step's volumes (m3) from the kernels' tallies to the balance (sources over ``src_dt_s``)."""
        if per_cell:
            gains, wants = float(sums[0]), float(sums[1])
        else:
            gains = self._n_active * max(src_uniform, 0.0) * src_dt_s
            wants = self._n_active * max(-src_uniform, 0.0) * src_dt_s
        t = self._totals
        t["source_in"] += gains * self._area
        t["sink_out"] += (wants - float(sums[2])) * self._area
        t["sink_capped"] += float(sums[2]) * self._area
        t["clamp_added"] += float(sums[3]) * self._area
        t["edge_outflow"] += float(sums[4]) * dt_s

    def _boundary_cells(self, t0_s: float, t1_s: float) -> None:
        """Inflows and held levels over [t0, t1]; their cells' trackers and row maxima."""
        flat = self.h.ravel()
        t = self._totals
        t["inflow"] += add_inflows(flat, self._inflows, t0_s, t1_s, self._area, self._inflow_cells)
        added, removed = hold_levels(flat, self._levels, t1_s, self._area)
        t["level_in"] += added
        t["level_out"] += removed
        rows_t, words_t, bits_t = self._boundary_tiles
        deepest = _boundary_trackers(flat, self._boundary_flat, self._boundary_rows, self._tally,
                                     self._max_depth.ravel(), self._arrival.ravel(), self.arrival_depth_m, t1_s,
                                     self._flow[self._now], rows_t, words_t, bits_t)
        self._h_max = max(self._h_max, deepest)

    def step_towards(self, target_s: float) -> float:
        """One of the equal stable steps that land on ``target_s``; returns its length (s).

        Cutting only the last step short before each report, at theta = 1,
        pumps energy into grid-scale waves on ponded water (a still pool grows
        a checkerboard); equal steps of the same number do not.  The step that
        lands on the target settles the cell sources (:meth:`step`).
        """
        remaining = target_s - self.t_s
        n = max(1, math.ceil(remaining / self.next_dt_s() - 1e-9))
        dt = remaining / n
        self.step(dt, settle=n == 1)
        return dt

    def withdraw(self, cells: np.ndarray, volume_m3: float) -> float:
        """Take up to ``volume_m3`` from ``cells`` (flat indices), in proportion to their depth (pumps).

        Never more than the cells hold; what is taken leaves the domain and is
        booked as pumped in the balance.  Returns the volume taken (m3).
        """
        flat = self.h.reshape(-1)
        depth = flat[cells]
        held = float(depth.sum()) * self._area
        if held <= 0.0 or volume_m3 <= 0.0:
            return 0.0
        taken = min(volume_m3, held)
        flat[cells] = depth * (1.0 - taken / held)
        self._totals["pumped"] += taken
        return taken

    def run_until(self, t_end_s: float, *, report_every_s: float | None = None,
                  on_report: Callable[[FloodState, MassBalance], None] | None = None) -> MassBalance:
        """Step to ``t_end_s``; ``on_report`` at each multiple of ``report_every_s`` and at the end.

        Between two report times the steps are equal, as long as the stable step allows.
        """
        if report_every_s is not None and not report_every_s > 0:
            raise ValueError("report_every_s must be positive")
        eps = 1e-9 * max(1.0, abs(t_end_s))
        while self.t_s < t_end_s - eps:
            target = t_end_s
            if report_every_s is not None:
                k = math.floor(self.t_s / report_every_s + 1e-9) + 1
                target = min(target, k * report_every_s)
            if self._quiet():
                self._quiet_steps_to(target, eps)
            while self.t_s < target - eps:
                self.step_towards(target)
            if abs(self.t_s - target) <= eps:
                self.t_s = target
            if on_report is not None:
                on_report(self.state, self.balance)
        return self.balance


    def _quiet(self) -> bool:
        """Whether nothing between two steps needs Python: a constant uniform source (or none), no
        inflows or held levels (``quiet_steps``)."""
        return (self.cell_sources is None and not self._inflows and not self._levels and self._drains is None
                and not callable(self.source_rate))

    def _quiet_steps_to(self, target_s: float, eps: float) -> None:
        """:meth:`step_towards` ``target_s`` until within ``eps`` of it, in compiled runs of steps."""
        from models.flood.quiet_steps import (
            FINITE,
            H_MAX,
            LAST_DT,
            NOW,
            STEPS,
            T_S,
            TILES,
            run_quiet_steps,
            run_team_steps,
            team_control,
        )

        rate = 0.0 if self.source_rate is None else float(self.source_rate)
        names = ("source_in", "sink_out", "sink_capped", "clamp_added", "edge_outflow")
        totals = np.array([self._totals[k] for k in names])
        while self.t_s < target_s - eps:
            kernel = self._kernels.pick()
            starts, bands = self._layouts[kernel]
            steps_before = self.steps
            started = time.perf_counter()
            args = (bands, self._z, self.h, self.qx, self.qy, self._gn2_x, self._gn2_y, self._gn2,
                    self._per_face_n, self._open, self._edge_slope, starts, self._span, self._seam_old, self._seam,
                    self._f, self._limited, self._active, self._no_src, rate, NO_CELL_SOURCES, self._sink_store,
                    self._no_drains, self.grid.dx_m, self.grid.dy_m, self.h_min_m, self.theta, self.arrival_depth_m,
                    self._max_depth, self._max_speed2, self._arrival, self._tally, self._rows32, self._rows_q,
                    self._rows_qx, self._rows64, self._flow, self._runs, self._masks, totals, self.t_s, target_s, eps,
                    min(self._kernels.steps_left(), self._quiet_run_steps), self.steps, self.alpha, self._min_d,
                    self.max_dt_s, self._h_max, self._now, self._tiles, self._n_active, self._area)
            if kernel is _step_bands:  # one parallel region for the run (the same bits as step by step)
                if self._team is None:
                    self._team = team_control(bands.size - 1)
                out = run_team_steps(*self._team, *args)
            else:
                out = run_quiet_steps(*args)
            ran = out[STEPS] - steps_before
            took = time.perf_counter() - started
            self._kernels.record(kernel, took, max(ran, 1))
            if ran:  # runs of about _QUIET_RUN_S, so that Ctrl-C and the kernel choice come soon on large grids
                self._quiet_run_steps = max(1, min(_QUIET_RUN_STEPS, int(_QUIET_RUN_S * ran / max(took, 1e-9))))
            self._now, self._tiles, self._h_max = out[NOW], out[TILES], out[H_MAX]
            self.steps = out[STEPS]
            self.cell_updates += ran * self.h.size
            for k, v in zip(names, totals):
                self._totals[k] = float(v)
            if not out[FINITE]:
                raise FloatingPointError(f"flood solver produced a non-finite depth at t = "
                                         f"{out[T_S] + out[LAST_DT]:.3f} s; lower alpha or max_dt_s")
            self.t_s = out[T_S]
            if ran:
                self.last_dt_s = out[LAST_DT]


def _spans(active: np.ndarray) -> np.ndarray:
    """[first, last + 1) of the open columns of each row ([0, 0) for a row of walls): the columns the kernels work on.

    A domain cut from a map (a city's outline) leaves much of its grid outside;
    beyond a row's span every face has a wall on one side and stays zero.
    """
    any_open = active.any(axis=1)
    first = active.argmax(axis=1)
    last = active.shape[1] - active[:, ::-1].argmax(axis=1)
    return np.ascontiguousarray(np.stack([np.where(any_open, first, 0), np.where(any_open, last, 0)], axis=1),
                                dtype=np.int64)


_PAGE_BYTES = 4096
_SLOT_BYTES = 512


def _staggered(shape: tuple[int, ...], dtype, slot: int) -> np.ndarray:
    """Zeros of ``shape`` whose data start ``slot`` x 512 bytes past a 4 KB boundary.

    Large arrays otherwise all start at the same place in a page, so that
    element c of one row of each shares its address's low 12 bits; a loop
    that stores to one and then loads from another at the same c waits on a
    false dependency (4K aliasing).  Each array the kernels sweep together
    gets its own slot.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + 2 * _PAGE_BYTES, dtype=np.uint8)
    start = (slot * _SLOT_BYTES - raw.ctypes.data) % _PAGE_BYTES
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _row_buffers(nbands: int, count: int, length: int, dtype, slot: int) -> np.ndarray:
    """``count`` row buffers of ``length`` per band (staggered; rows 512 bytes apart within a page).

    The kernels use the first ``length`` elements of each row; the rest pads
    the row so that rows of one buffer do not share page offsets either.
    """
    itemsize = np.dtype(dtype).itemsize
    row_bytes = -(-length * itemsize // _PAGE_BYTES) * _PAGE_BYTES + _SLOT_BYTES
    return _staggered((nbands, count, row_bytes // itemsize), dtype, slot)


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view
