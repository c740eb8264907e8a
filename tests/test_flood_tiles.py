"""Active tiles: the flags, their runs and the rows they mark agree with plain NumPy on random rows."""

import numba
import numpy as np

from models.flood.tiles import TILE_COLS, active_tiles, flow_flags, row_flags, tile_count, tile_marks, tile_runs, \
    word_count


@numba.njit
def _runs(mask, cols, expand):
    starts, ends = np.zeros(mask.size * 64 + 1, np.int64), np.zeros(mask.size * 64 + 1, np.int64)
    n = tile_runs(mask, cols, expand, starts, ends)
    return starts[:n], ends[:n]


@numba.njit
def _row_flags(depth32, lo, hi, h_min32, words):
    deep = np.ones((depth32.size // 8 + 3) * 8, np.uint8)  # garbage outside the span, as in the solver's buffers
    out = np.full(words, np.uint64(12345))
    row_flags(depth32, lo, hi, h_min32, deep, out)
    return out


@numba.njit
def _active(flow, now, r):
    out = np.zeros(flow.shape[2], np.uint64)
    active_tiles(flow, now, r, out)
    return out


def _bits(words: np.ndarray, tiles: int) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:tiles].astype(bool)


def test_flags_mark_tiles_with_a_cell_deeper_than_h_min_in_float32():
    rng = np.random.default_rng(4)
    for cols in (1, 15, 16, 17, 1023, 1024, 1025, 2100):
        depth = np.where(rng.random((5, cols)) < 0.01, 2e-3, rng.uniform(0.0, 1e-3, (5, cols)))
        depth[0, -1] = np.nextafter(1e-3, 1.0)  # above h_min in float64, not in float32
        flags = flow_flags(depth, 1e-3)
        assert flags.shape == (5, word_count(cols)) and flags.dtype == np.uint64
        tiles = tile_count(cols)
        padded = np.zeros((5, tiles * TILE_COLS), dtype=bool)
        padded[:, :cols] = depth.astype(np.float32) > np.float32(1e-3)
        expected = padded.reshape(5, tiles, TILE_COLS).any(axis=2)
        for r in range(5):
            np.testing.assert_array_equal(_bits(flags[r], tiles), expected[r])
            assert not np.unpackbits(flags[r].view(np.uint8), bitorder="little")[tiles:].any()
            lo, hi = sorted(rng.integers(0, cols + 1, 2))
            in_span = np.zeros(cols, np.float32)
            in_span[lo:hi] = depth[r, lo:hi]
            np.testing.assert_array_equal(_row_flags(depth[r].astype(np.float32), lo, hi, np.float32(1e-3), flags.shape[1]),
                                          flow_flags(in_span[None, :], 1e-3)[0])


def test_runs_are_the_set_tiles_widened_and_cut_to_the_row():
    rng = np.random.default_rng(5)
    for cols in (16, 100, 1024, 1025, 3000):
        tiles = tile_count(cols)
        for density in (0.0, 0.1, 0.5, 0.9, 1.0):
            set_tiles = rng.random(tiles) < density
            words = np.packbits(np.append(set_tiles, np.zeros(word_count(cols) * 64 - tiles, bool)),
                                bitorder="little").view("<u8").astype(np.uint64)
            for expand in (0, 1):
                starts, ends = _runs(words, cols, expand)
                covered = np.zeros(cols, bool)
                for a, e in zip(starts, ends):
                    assert 0 <= a < e <= cols and not covered[a:e].any()
                    covered[a:e] = True
                cells = np.repeat(set_tiles, TILE_COLS)[:cols]
                grown = cells.copy()
                if expand:
                    grown[1:] |= cells[:-1]
                    grown[:-1] |= cells[1:]
                np.testing.assert_array_equal(covered, grown)
                assert np.all(starts[1:] - ends[:-1] >= TILE_COLS - 2 * expand)


def test_active_tiles_join_three_rows_and_two_steps_and_boundary_cells_mark_theirs():
    rng = np.random.default_rng(6)
    rows, cols = 6, 1500
    flow = np.stack([flow_flags(np.where(rng.random((rows, cols)) < 0.002, 1.0, 0.0), 1e-3) for _ in range(2)])
    for now in (0, 1):
        for r in range(rows):
            near = slice(max(r - 1, 0), r + 2)
            expected = np.bitwise_or.reduce(np.concatenate([flow[0, near], flow[1, near]]), axis=0)
            np.testing.assert_array_equal(_active(flow, now, r), expected)
    depth = np.zeros((rows, cols))
    cells = np.array([0, 17, 2 * cols + 1499, 5 * cols + 64 * TILE_COLS, 5 * cols + 64 * TILE_COLS + 3, 18])
    marked = flow[0].copy()
    rows_t, words_t, bits_t = tile_marks(cells, cols)
    assert np.unique(rows_t * 8 + words_t).size == rows_t.size
    marked[rows_t, words_t] |= bits_t
    depth.ravel()[cells] = 1.0
    np.testing.assert_array_equal(marked, flow[0] | flow_flags(depth, 1e-3))
