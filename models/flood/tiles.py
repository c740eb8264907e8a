"""Where water can flow: tiles of 16 columns of a row that hold a cell deeper than the flow threshold.

In a storm most wet cells hold a film: rain that the soil has not yet taken,
too shallow to flow (no face carries water unless one of its cells is deeper
than ``h_min``).  The face update (pass 1 of the solver's step) works only
on the tiles where water may flow, the *active* tiles of a row: those where a
cell of the row, or of a row next to it, was deeper than ``h_min`` at the
start of this step or of the last one.  Every other face is zero already:

* a face can be non-zero after a step only if one of its cells was deeper
  than ``h_min`` at that step's start (the face rule, ``_face_q``);
* such a face lies in an active tile of the next step too (the previous
  step's flags are part of it), where it is computed again, and becomes zero
  there if its water has gone.

So a step gives the same bits whether it computes all faces or only these.
Flags are one byte a tile, two sets (this step's start and the last one's,
``flow[now]`` and ``flow[1 - now]``): pass 2 writes the next step's flags over
the last step's, row by row, after pass 1 has read them (see ``hydraulics``).
"""

from __future__ import annotations

import numba
import numpy as np

from models.flood.vectors import trailing_zeros

TILE_COLS = 16
"""Columns of a tile: a 512-bit vector of float32.  (Carlisle, in a storm's wettest half hour: the active tiles
cover 12 % of the grid, the rows' spans 58 %; runs of active tiles are some 40 columns long.)"""

_JIT = dict(cache=True, error_model="numpy", fastmath=False, _nrt=False)
_ONE = np.uint64(1)


def tile_count(cols: int) -> int:
    """Tiles of a row of ``cols`` columns (the last one may be short)."""
    return -(-cols // TILE_COLS)


def word_count(cols: int) -> int:
    """64-bit words of a row's flags (bit t % 64 of word t // 64 is tile t)."""
    return -(-tile_count(cols) // 64)


def flow_flags(depth_m: np.ndarray, h_min_m: float) -> np.ndarray:
    """(rows, words) uint64: the bit of each tile where a cell is deeper than ``h_min_m`` (compared in float32,
    as the face rule does)."""
    rows, cols = depth_m.shape
    words = word_count(cols)
    deep = np.zeros((rows, words * 64 * TILE_COLS), dtype=bool)
    deep[:, :cols] = np.asarray(depth_m, dtype=np.float32) > np.float32(h_min_m)
    tiles = deep.reshape(rows, words * 64, TILE_COLS).any(axis=2)
    return np.packbits(tiles, axis=1, bitorder="little").view("<u8").astype(np.uint64)


def tile_marks(flat_cells: np.ndarray, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, words, bits) of the tiles of ``flat_cells``, one entry per (row, word), so that
    ``flow[rows, words] |= bits`` sets them all.  For cells that may gain water between steps (inflows,
    held levels): keeping their tiles always active costs a few faces, and no test of their depth."""
    flat = np.asarray(flat_cells, dtype=np.int64)
    row, tile = flat // cols, (flat % cols) // TILE_COLS
    key = row * word_count(cols) + tile // 64
    keys, where = np.unique(key, return_inverse=True)
    bits = np.zeros(keys.size, dtype=np.uint64)
    np.bitwise_or.at(bits, where, np.left_shift(np.uint64(1), (tile % 64).astype(np.uint64)))
    return keys // word_count(cols), keys % word_count(cols), bits


@numba.njit(inline="always", **_JIT)
def active_tiles(flow, now, r, out):
    """``out``: the bits of the active tiles of row r: a cell of rows r-1..r+1 deeper than h_min, at this
    step's start (``flow[now]``) or the last step's (``flow[1 - now]``)."""
    rows = flow.shape[1]
    a, b = flow[now], flow[1 - now]
    up, down = max(r - 1, 0), min(r + 1, rows - 1)
    for w in range(out.size):
        out[w] = a[up, w] | b[up, w] | a[r, w] | b[r, w] | a[down, w] | b[down, w]


@numba.njit(inline="always", **_JIT)
def tile_runs(mask, cols, expand, starts, ends):
    """Column ranges [starts[i], ends[i]) of the runs of set bits in ``mask`` (tiles), widened by ``expand``
    columns on each side and cut to [0, cols); returns their number.  Runs are at least a tile apart, so that
    widened by one column they neither touch nor overlap."""
    n = 0
    first = -1  # the first tile of the run under way, -1 between runs
    for w in range(mask.size):
        word, base, pos = mask[w], w * 64, 0
        while pos < 64:
            rest = (word if first < 0 else ~word) >> np.uint64(pos)
            if rest == 0:
                break
            pos += trailing_zeros(rest)
            if first < 0:
                first = base + pos
            else:
                starts[n] = max(first * TILE_COLS - expand, 0)
                ends[n] = min((base + pos) * TILE_COLS + expand, cols)
                n += 1
                first = -1
    if first >= 0:
        starts[n] = max(first * TILE_COLS - expand, 0)
        ends[n] = cols
        n += 1
    return n


@numba.njit(inline="always", **_JIT)
def every_tile(cols, out):
    """``out``: the bits of every tile of a row of ``cols`` columns."""
    tiles = -(-cols // TILE_COLS)
    for w in range(out.size):
        n = min(max(tiles - 64 * w, 0), 64)
        out[w] = ~np.uint64(0) if n == 64 else (_ONE << np.uint64(n)) - _ONE


@numba.njit(inline="always", **_JIT)
def covers(mask, full):
    """Whether ``mask`` has every bit of ``full``."""
    for w in range(mask.size):
        if mask[w] & full[w] != full[w]:
            return False
    return True


@numba.njit(inline="always", **_JIT)
def span_flags(lo, hi, out):
    """Flags of one row (``out``, words) whose every cell of [lo, hi) is deeper than h_min: the span's tiles."""
    t_lo, t_hi = lo // TILE_COLS, -(-hi // TILE_COLS) if hi > lo else lo // TILE_COLS
    for w in range(out.size):
        a, b = max(t_lo - 64 * w, 0), min(t_hi - 64 * w, 64)
        if b <= a:
            out[w] = 0
        elif b - a == 64:
            out[w] = ~np.uint64(0)
        else:
            out[w] = ((_ONE << np.uint64(b - a)) - _ONE) << np.uint64(a)


@numba.njit(inline="always", **_JIT)
def row_flags(depth32, lo, hi, h_min32, deep, out):
    """Flags of one row (``out``, words) from its float32 depths ``depth32`` (a whole-row buffer, valid on
    [lo, hi); the rest of the row is walls).  ``deep`` (uint8, a whole-row buffer at least a tile longer than
    the row, of a whole number of 64-bit words) receives 1 where a cell is deeper than ``h_min32``, in one vector
    loop, zeros padding the span to whole tiles; each tile's 16 bytes are then read as two 64-bit words."""
    for w in range(out.size):
        out[w] = 0
    if hi <= lo:
        return
    t_lo, t_hi = lo // TILE_COLS, -(-hi // TILE_COLS)
    for c in range(t_lo * TILE_COLS, lo):
        deep[c] = 0
    for c in range(hi, t_hi * TILE_COLS):
        deep[c] = 0
    span, marks = depth32[lo:hi], deep[lo:hi]  # views from 0, so that the loop vectorises
    everywhere = np.uint8(1)
    for c in range(hi - lo):
        mark = np.uint8(span[c] > h_min32)
        marks[c] = mark
        everywhere = min(everywhere, mark)
    if everywhere:  # a wet row: all the span's tiles, without reading the marks again
        span_flags(lo, hi, out)
        return
    pairs = deep.view(np.uint64)
    for t in range(t_lo, t_hi):
        if pairs[2 * t] | pairs[2 * t + 1]:
            out[t >> 6] |= _ONE << np.uint64(t & 63)
