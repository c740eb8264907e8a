"""Boundary conditions of the flood solver: edges, discharge inflows, held water levels.

* Domain edges are closed walls unless an :class:`Edges` spec opens them; NaN
  cells and obstacles are always walls (no flow in or out, no storage).
* An open edge is a free outflow of normal-depth type: the outward unit
  discharge q (m2/s) on the edge face follows the same local inertial update as
  an interior face, with the depth of the edge cell and, as driving slope, the
  water-surface slope across the first interior face (a zero-gradient
  condition, so the slope beyond the edge equals the slope just inside; on a
  uniform slope at steady state this gives Manning's normal depth)::

      q_out = max(0, (q_out + g h dt S) / (1 + g dt n^2 |q_out| / h^(7/3)))

  with S >= 0 the outward fall of the surface (m/m) and q_out = 0 where the
  edge cell is not deeper than ``h_min_m``.  A fixed slope can be given
  instead (``Edges(slope=...)``).  Only outflow is allowed: water never
  enters through an open edge.  The compiled kernels in ``hydraulics``
  evaluate it (numba's cache only follows the file of a kernel).
* A :class:`DischargeInflow` adds Q(t) (m3/s) to a point or a line of cells as
  a source term, shared equally over the cells; the volume of each step is the
  exact integral of the piecewise-linear hydrograph over the step.
* A :class:`LevelBoundary` holds cells at a water level (m, same datum as the
  bed): after every step their depth is reset to ``max(level - bed, 0)`` and the
  volume this adds or removes is booked as boundary inflow or outflow.

Hydrographs are piecewise-linear in time and constant beyond their first and
last points; their times must strictly increase.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from twin.errors import InputError, Problem

EDGE_NAMES = ("north", "south", "west", "east")
EDGE_KINDS = ("closed", "open")


class BoundaryError(InputError, ValueError):
    """A boundary condition or hydrograph the solver cannot use."""


def _error(where: str, message: str) -> BoundaryError:
    return BoundaryError(Problem("flood boundary", where, message))


@dataclass(frozen=True)
class Edges:
    """Kind of each domain edge: ``"closed"`` (wall) or ``"open"`` (free outflow).

    North is row 0 of the grid, west is column 0.
    """

    north: str = "closed"
    south: str = "closed"
    west: str = "closed"
    east: str = "closed"
    slope: float | None = None
    """Fixed outward water-surface slope (m/m) for open edges; None: zero-gradient."""

    def __post_init__(self) -> None:
        for name in EDGE_NAMES:
            kind = getattr(self, name)
            if kind not in EDGE_KINDS:
                raise _error(name, f"edge kind {kind!r} is not one of {', '.join(EDGE_KINDS)}")
        if self.slope is not None and not (np.isfinite(self.slope) and self.slope >= 0):
            raise _error("slope", f"open-edge slope must be a finite number >= 0, got {self.slope!r}")

    @classmethod
    def parse(cls, spec: str | Mapping[str, str] | Edges) -> Edges:
        """``"closed"``, ``"open"``, a mapping such as ``{"east": "open"}`` or an Edges."""
        if isinstance(spec, Edges):
            return spec
        if isinstance(spec, str):
            if spec not in EDGE_KINDS:
                raise _error("boundary", f"{spec!r} is not one of {', '.join(EDGE_KINDS)}")
            return cls(spec, spec, spec, spec)
        unknown = sorted(set(spec) - set(EDGE_NAMES) - {"slope"})
        if unknown:
            raise _error("boundary", f"unknown edge(s) {unknown}; edges are {', '.join(EDGE_NAMES)}")
        return cls(**dict(spec))

    def open_flags(self) -> np.ndarray:
        """uint8 flags in the order north, south, west, east (1 = open)."""
        return np.array([getattr(self, n) == "open" for n in EDGE_NAMES], dtype=np.uint8)


@dataclass(frozen=True, eq=False)
class Hydrograph:
    """A value against time: piecewise-linear, constant before the first and after the last point."""

    times_s: np.ndarray
    values: np.ndarray
    name: str = ""

    def __init__(self, times_s: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                 name: str = "") -> None:
        t = np.asarray(times_s, dtype=np.float64).ravel()
        v = np.asarray(values, dtype=np.float64).ravel()
        where = name or "hydrograph"
        if t.size == 0 or t.size != v.size:
            raise _error(where, "needs as many times as values and at least one point "
                                f"(got {t.size} and {v.size})")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
            raise _error(where, "times and values must be finite numbers")
        if t.size > 1 and np.any(np.diff(t) <= 0):
            bad = int(np.argmax(np.diff(t) <= 0)) + 1
            raise _error(where, f"times must strictly increase; point {bad} (t = {t[bad]} s) "
                                "is not after the one before")
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "name", name)
        # Python floats for the per-step lookups: NumPy's call overhead on one number is ten times the work
        object.__setattr__(self, "_t", t.tolist())
        object.__setattr__(self, "_v", v.tolist())

    def at(self, t_s: float) -> float:
        """Value at ``t_s``: ``np.interp``'s arithmetic, operation for operation, on one number."""
        t, v, x = self._t, self._v, float(t_s)
        if x > t[-1]:
            return v[-1]
        if x < t[0]:
            return v[0]
        j = bisect_right(t, x) - 1  # t[j] <= x < t[j + 1]
        if j == len(t) - 1 or t[j] == x:
            return v[j]
        slope = (v[j + 1] - v[j]) / (t[j + 1] - t[j])
        return slope * (x - t[j]) + v[j]

    def integral(self, t0_s: float, t1_s: float) -> float:
        """Exact integral of the hydrograph from ``t0_s`` to ``t1_s`` (value x s)."""
        if t1_s <= t0_s:
            return 0.0
        t = self.times_s
        first, end = bisect_right(self._t, t0_s), bisect_left(self._t, t1_s)
        if first >= end:  # no knot inside: the series is linear over the interval (a flood step's case)
            return 0.5 * (self.at(t0_s) + self.at(t1_s)) * (t1_s - t0_s)
        knots = np.concatenate(([t0_s], t[first:end], [t1_s]))
        vals = np.interp(knots, t, self.values)
        return float(np.sum(0.5 * (vals[1:] + vals[:-1]) * np.diff(knots)))


CellSpec = np.ndarray | Sequence[tuple[int, int]] | tuple[int, int]


def line_cells(start_rc: tuple[int, int], end_rc: tuple[int, int]) -> np.ndarray:
    """(n, 2) row/col of cells along a straight segment between two cell centres, in order.

    Consecutive cells share an edge or a corner; no cell is repeated.
    """
    (r0, c0), (r1, c1) = start_rc, end_rc
    n = 2 * max(abs(r1 - r0), abs(c1 - c0)) + 1
    rows = np.rint(np.linspace(r0, r1, n)).astype(np.int64)
    cols = np.rint(np.linspace(c0, c1, n)).astype(np.int64)
    rc = np.stack([rows, cols], axis=1)
    _, first = np.unique(rc, axis=0, return_index=True)
    return rc[np.sort(first)]


def cell_index(cells: CellSpec, shape: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a cell selection: a boolean mask, one (row, col) or an (n, 2) list."""
    arr = np.asarray(cells)
    if arr.dtype == bool:
        if arr.shape != shape:
            raise _error(where, f"cell mask has shape {arr.shape}, the grid {shape}")
        rows, cols = np.nonzero(arr)
    else:
        arr = np.atleast_2d(arr)
        if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
            raise _error(where, "cells must be a boolean mask or integer (row, col) pairs")
        rows, cols = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
    if rows.size == 0:
        raise _error(where, "no cells selected")
    if rows.min() < 0 or cols.min() < 0 or rows.max() >= shape[0] or cols.max() >= shape[1]:
        raise _error(where, f"cells outside the grid of {shape[0]} x {shape[1]} cells")
    return rows, cols


@dataclass
class DischargeInflow:
    """Discharge Q(t) (m3/s, >= 0) entering at a point or along a line of cells, shared equally."""

    cells: CellSpec
    discharge: Hydrograph
    name: str = ""

    def __post_init__(self) -> None:
        if np.any(self.discharge.values < 0):
            raise _error(self.name or "inflow",
                         "discharge must be >= 0 m3/s (use a sink source for abstraction)")


@dataclass
class LevelBoundary:
    """Cells held at a water level L(t) (m, the bed's datum); dry where the bed is above it."""

    cells: CellSpec
    level: Hydrograph
    name: str = ""


@dataclass
class _Placed:
    """A boundary resolved onto the grid: flat cell indices and the hydrograph."""

    flat: np.ndarray
    series: Hydrograph
    name: str
    bed_m: np.ndarray


def place(items: Iterable[DischargeInflow | LevelBoundary], z_m: np.ndarray,
          active: np.ndarray) -> list[_Placed]:
    """Check that each boundary's cells are inside the grid and not walls; flat indices."""
    placed = []
    for k, item in enumerate(items):
        where = item.name or f"{type(item).__name__} {k}"
        rows, cols = cell_index(item.cells, z_m.shape, where)
        if not np.all(active[rows, cols]):
            raise _error(where, "some cells are walls (NaN bed or obstacle); "
                                "move the boundary onto open cells")
        flat = np.unique(np.ravel_multi_index((rows, cols), z_m.shape))
        series = item.discharge if isinstance(item, DischargeInflow) else item.level
        placed.append(_Placed(flat, series, where, z_m.ravel()[flat].astype(np.float64)))
    return placed


def joined_cells(placed: list[_Placed]) -> tuple[np.ndarray, np.ndarray]:
    """The placed boundaries' cells end to end, and where each one's start and end (``ptr``, one more entry)."""
    ptr = np.zeros(len(placed) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([p.flat.size for p in placed], dtype=np.int64)
    cells = np.concatenate([p.flat for p in placed]).astype(np.int64) if placed else np.zeros(0, np.int64)
    return cells, ptr


def add_inflows(h_flat: np.ndarray, inflows: list[_Placed], t0_s: float, t1_s: float, cell_area_m2: float,
                joined: tuple[np.ndarray, np.ndarray]) -> float:
    """Add each inflow's volume over [t0, t1] to its cells; the total volume added (m3).

    ``joined``: :func:`joined_cells` of ``inflows``, made once.  The depths
    are added by one compiled call (``_add_depths``): at a trainer's step of
    a second, indexing each inflow's cells from NumPy cost more than the
    step's hydraulics on the inflows' rows.  The same arithmetic, so the
    same bits.
    """
    total = 0.0
    depths = np.zeros(len(inflows))
    for k, inflow in enumerate(inflows):
        volume = inflow.series.integral(t0_s, t1_s)
        if volume > 0.0:
            depths[k] = volume / (inflow.flat.size * cell_area_m2)
            total += volume
    if total > 0.0:
        _add_depths(h_flat, joined[0], joined[1], depths)
    return total


@numba.njit(cache=True)
def _add_depths(h_flat, cells, ptr, depths):
    """h_flat[cells of boundary k] += depths[k] for each k (a boundary's cells are distinct)."""
    for k in range(depths.size):
        d = depths[k]
        if d > 0.0:
            for i in range(ptr[k], ptr[k + 1]):
                h_flat[cells[i]] += d


def hold_levels(h_flat: np.ndarray, levels: list[_Placed], t_s: float,
                cell_area_m2: float) -> tuple[float, float]:
    """Reset held cells to their level at ``t_s``; (volume added, volume removed) in m3."""
    added = removed = 0.0
    for held in levels:
        target = np.maximum(held.series.at(t_s) - held.bed_m, 0.0)
        change = (target - h_flat[held.flat]) * cell_area_m2
        added += float(change[change > 0].sum())
        removed -= float(change[change < 0].sum())
        h_flat[held.flat] = target
    return added, removed
