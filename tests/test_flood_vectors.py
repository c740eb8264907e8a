"""The flood step's vector code: row sums in their documented order to the bit, a span's sum equal to its
whole row's, and eight-cell stores that touch only their eight cells."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from models.flood.vectors import BLOCK, LANES, fill8, fixed_sum, prefetch, span_sum, trailing_zeros


def _reference(a: np.ndarray) -> float:
    """The order ``models/flood/sums.py`` describes, in plain Python floats."""
    m = a.size - a.size % BLOCK
    running = [0.0] * BLOCK
    for i in range(m):
        running[i % BLOCK] += float(a[i])
    while len(running) > LANES:  # the vectors, added as a tree: lane j of vector k is running[k * LANES + j]
        vectors = [running[k:k + LANES] for k in range(0, len(running), LANES)]
        vectors = [[x + y for x, y in zip(vectors[k], vectors[k + 1])] for k in range(0, len(vectors), 2)]
        running = [x for v in vectors for x in v]
    while len(running) > 1:  # within the last vector: lanes j and j + half
        half = len(running) // 2
        running = [running[j] + running[j + half] for j in range(half)]
    total = running[0]
    for i in range(m, a.size):
        total += float(a[i])
    return total


@pytest.mark.parametrize("n", [0, 1, 7, 31, 32, 33, 64, 100, 1813])
def test_fixed_sum_follows_its_documented_order_to_the_bit(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n) * 10.0 ** rng.integers(-12, 3, n)  # magnitudes far apart: the order shows
    got = fixed_sum(a)
    assert got == _reference(a)
    assert got == pytest.approx(math.fsum(a), rel=1e-12, abs=1e-12)


def test_the_order_shows_in_the_bits():
    """1e16 swallows a 1 added to it: only the 1 in its own running sum is lost, the other 62 survive."""
    a = np.array([1e16] + [1.0] * 63 + [-1e16])
    assert fixed_sum(a) == 62.0
    assert sum(a.tolist()) == 0.0  # one running sum loses them all


@pytest.mark.parametrize("lo,hi", [(0, 1813), (5, 6), (31, 33), (100, 1700), (1790, 1813), (40, 40)])
def test_a_span_sum_has_the_bits_of_its_whole_row(lo, hi):
    rng = np.random.default_rng(lo * 7 + hi)
    row = np.zeros(1813)
    row[lo:hi] = rng.random(hi - lo) * 10.0 ** rng.integers(-9, 2, hi - lo)
    buf = np.full(1813, np.nan)  # the span's surroundings hold stale numbers, as a reused row buffer does
    buf[lo:hi] = row[lo:hi]
    assert span_sum(buf, lo, hi) == fixed_sum(row)


@njit
def _fill8(row, start, value):
    fill8(row, start, value)


@pytest.mark.parametrize("start", [0, 3, 8, 92])
def test_fill8_writes_its_eight_cells_and_no_other(start):
    row = np.arange(100, dtype=np.float64)
    _fill8(row, start, -2.5)
    expected = np.arange(100, dtype=np.float64)
    expected[start:start + 8] = -2.5
    np.testing.assert_array_equal(row, expected)
    row = np.arange(100, dtype=np.float64)
    view = row[10:50]  # a view: its own start
    _fill8(view, 1, 7.0)
    assert (row[11:19] == 7.0).all() and row[10] == 10.0 and row[19] == 19.0


@njit
def _lowest_bits(word):
    found = []
    while word:
        found.append(trailing_zeros(word))
        word &= word - np.uint64(1)
    return found


def test_trailing_zeros_walks_the_set_bits_of_a_word():
    assert _lowest_bits(np.uint64(0b1011000)) == [3, 4, 6]
    assert _lowest_bits(np.uint64(1) << np.uint64(63)) == [63]


@njit
def _sum_with_prefetch(a, ahead):
    total = 0.0
    for i in range(a.size):
        prefetch(a, i + ahead)  # far past the end too: a prefetch never faults
        total += a[i]
    return total


def test_prefetch_changes_no_number_and_never_faults():
    a = np.arange(1000, dtype=np.float64)
    assert _sum_with_prefetch(a, 64) == _sum_with_prefetch(a, 1 << 40) == a.sum()
