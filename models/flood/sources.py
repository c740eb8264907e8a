"""Water sources and sinks of the flood grid: rain, infiltration and urban drainage.

The solver asks for a ``source_rate(t_s)`` (m/s per cell, positive adds water)
and for sink rates capped at the water a cell holds.  People publish rain in
mm/h, storm formulas in L/(s·ha) against minutes, soil parameters in mm/h and
mm; those are turned into SI (m, s, m/s) by the unit helpers below and nowhere
else.

Time convention of every rain series: row ``i`` holds from ``time_s[i]`` to
``time_s[i + 1]`` (step-wise constant).  The last row only ends the series: no
rain falls before the first time or from the last time on, so a file's last
row must be zeros.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
import pandas as pd

from models.flood.vectors import fill8
from twin.errors import InputError, Problem, input_error
from twin.geo.raster import Grid

# ----------------------------------------------------------------------------- units

#: 1 mm/h in m/s: 1e-3 m per 3,600 s.
M_PER_S_PER_MM_PER_H = 1.0 / 3.6e6
#: 1 L/(s·ha) in mm/h: 1e-3 m³/s over 1e4 m² is 1e-7 m/s, times 3.6e6 (mm/h per m/s) = 0.36 mm/h.
MM_PER_H_PER_L_PER_S_HA = 0.36
M_PER_MM = 1e-3
S_PER_MIN = 60.0
S_PER_H = 3600.0


def mm_per_h_to_m_per_s(rate_mm_per_h: np.ndarray | float) -> np.ndarray | float:
    return rate_mm_per_h * M_PER_S_PER_MM_PER_H


def m_per_s_to_mm_per_h(rate_m_per_s: np.ndarray | float) -> np.ndarray | float:
    return rate_m_per_s / M_PER_S_PER_MM_PER_H


def l_per_s_ha_to_mm_per_h(q_l_per_s_ha: np.ndarray | float) -> np.ndarray | float:
    return q_l_per_s_ha * MM_PER_H_PER_L_PER_S_HA


# ----------------------------------------------------------------------------- rain series


@dataclass
class RainSeries:
    """Rain intensities (mm/h) per time row and column, mapped to grid cells.

    ``zone_ids`` is None for one uniform column.  ``cell_column`` gives, per
    cell, the column that rains on it (``len(columns)`` for no rain); None until
    the series is placed on a grid (:meth:`on_grid`), in which case
    :meth:`rate_m_per_s` returns a 0-d array that broadcasts.
    """

    time_s: np.ndarray
    rain_mm_per_h: np.ndarray
    columns: tuple[str, ...]
    zone_ids: np.ndarray | None = None
    cell_column: np.ndarray | None = None
    source: str = ""
    notes: list[Problem] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    _rows_m_per_s: np.ndarray = field(init=False, repr=False)
    _cached_row: int = field(init=False, repr=False, default=-2)
    _cached_rate: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.time_s = np.asarray(self.time_s, dtype=np.float64)
        self.rain_mm_per_h = np.asarray(self.rain_mm_per_h, dtype=np.float64).reshape(len(self.time_s), -1)
        # One extra zero column for cells without rain, so mapping is a single take.
        padded = np.zeros((len(self.time_s), self.rain_mm_per_h.shape[1] + 1))
        padded[:, :-1] = mm_per_h_to_m_per_s(self.rain_mm_per_h)
        self._rows_m_per_s = padded

    @property
    def n_columns(self) -> int:
        return self.rain_mm_per_h.shape[1]

    @property
    def start_s(self) -> float:
        return float(self.time_s[0])

    @property
    def end_s(self) -> float:
        """Time (s) the rain stops: the last row's time."""
        return float(self.time_s[-1])

    def row_at(self, t_s: float) -> int:
        """Row whose intensities hold at ``t_s``; -1 before the first or from the last time on."""
        i = int(np.searchsorted(self.time_s, t_s, side="right")) - 1
        return i if 0 <= i < len(self.time_s) - 1 else -1

    def column_rate_mm_per_h(self, t_s: float) -> np.ndarray:
        """Intensity (mm/h) per column at ``t_s``."""
        i = self.row_at(t_s)
        return self.rain_mm_per_h[i].copy() if i >= 0 else np.zeros(self.n_columns)

    def rate_m_per_s(self, t_s: float) -> np.ndarray:
        """Rain rate (m/s) per cell at ``t_s``, read-only; the same array while the row holds."""
        i = self.row_at(t_s)
        if i == self._cached_row and self._cached_rate is not None:
            return self._cached_rate
        row = self._rows_m_per_s[i] if i >= 0 else np.zeros(self.n_columns + 1)
        rate = np.asarray(row[0]) if self.cell_column is None else np.take(row, self.cell_column)
        rate.flags.writeable = False
        self._cached_row, self._cached_rate = i, rate
        return rate

    def mean_rate_m_per_s(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Mean rain rate (m/s) per cell from ``t0_s`` to ``t1_s`` (as :meth:`rate_m_per_s`, which it is where
        one row holds all that time): a step over several rows gets all their rain."""
        k = int(np.searchsorted(self.time_s, t0_s, side="right"))  # the first row time after t0
        if t1_s <= t0_s or k == len(self.time_s) or self.time_s[k] >= t1_s:
            return self.rate_m_per_s(0.5 * (t0_s + t1_s))
        per_column = np.append(self.depth_mm_between(t0_s, t1_s), 0.0) / 1000.0 / (t1_s - t0_s)
        return np.asarray(per_column[0]) if self.cell_column is None else np.take(per_column, self.cell_column)

    def depth_mm_between(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Rain depth (mm) per column from ``t0_s`` to ``t1_s``: the exact integral of the steps."""
        if t1_s < t0_s:
            raise ValueError(f"t1_s ({t1_s}) is before t0_s ({t0_s})")
        starts, ends = self.time_s[:-1], self.time_s[1:]
        overlap_s = np.clip(np.minimum(ends, t1_s) - np.maximum(starts, t0_s), 0.0, None)
        return overlap_s @ self.rain_mm_per_h[:-1] / S_PER_H

    def cell_depth_mm_between(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Rain depth (mm) per cell from ``t0_s`` to ``t1_s`` (needs a grid)."""
        if self.cell_column is None:
            raise ValueError("the series is not on a grid; call on_grid(shape) first")
        return np.take(np.append(self.depth_mm_between(t0_s, t1_s), 0.0), self.cell_column)

    def on_grid(self, shape: tuple[int, ...], mask: np.ndarray | None = None) -> RainSeries:
        """This uniform series raining on every cell of ``shape`` (only where ``mask`` is True)."""
        if self.zone_ids is not None:
            raise ValueError("a zoned series is placed by its zone raster (read_rain_csv)")
        column = np.zeros(shape, dtype=np.int32)
        if mask is not None:
            column[~np.asarray(mask, dtype=bool)] = 1
        return RainSeries(self.time_s, self.rain_mm_per_h, self.columns, None, column, self.source,
                          list(self.notes), dict(self.meta))


def uniform_rain(mm_per_h: float, *, duration_s: float = math.inf, start_s: float = 0.0) -> RainSeries:
    """Constant rain of ``mm_per_h`` from ``start_s`` for ``duration_s`` (forever by default)."""
    if not (mm_per_h >= 0 and math.isfinite(mm_per_h)):
        raise InputError(Problem("uniform_rain", "mm_per_h", f"{mm_per_h!r} is not a rain intensity >= 0"))
    if not duration_s > 0:
        raise InputError(Problem("uniform_rain", "duration_s", f"{duration_s!r} is not a positive duration"))
    return RainSeries(np.array([start_s, start_s + duration_s]), np.array([[mm_per_h], [0.0]]),
                      ("rain_mm_per_h",), source="uniform_rain")


_ZONE_COLUMN = re.compile(r"(?:zone_)?([+-]?\d+)")
_MAX_LISTED = 12


def read_rain_csv(path: str | PathLike[str], zones: Grid | None = None) -> RainSeries:
    """Read ``time_s`` and one uniform intensity column or one ``zone_<id>`` column per zone (mm/h).

    Every problem (order of times, non-numbers, negative rain, zones of the
    raster without a column, ...) is reported at once with its line and column.
    Columns whose zone has no cell in ``zones`` are kept in ``notes``.
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise input_error(path, "", "rain file not found; check the path in the city manifest")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        first_row = next(reader, None)
        rows = [(reader.line_num, r) for r in reader if any(f.strip() for f in r)]
    if first_row is None:
        raise input_error(path, "line 1", "the file is empty; expected a header time_s,<intensity columns>")
    names = [h.strip() for h in first_row]
    header: list[Problem] = []
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if name in seen:
            header.append(Problem(src, f"line 1, column {j + 1} ({name!r})", f"column name repeats column {seen[name] + 1}"))
        seen.setdefault(name, j)
    if "time_s" not in seen:
        header.append(Problem(src, "line 1", "no time_s column; the header must be time_s, then one intensity "
                                             "column (uniform rain) or one column per zone (zone_<id>), in mm/h"))
    t_col = seen.get("time_s", -1)
    value_cols = [j for j in range(len(names)) if j != t_col]
    if not value_cols:
        header.append(Problem(src, "line 1", "no intensity column after time_s"))
    zone_ids = _zone_ids_of_columns(src, names, value_cols, zones, header)

    problems: list[Problem] = []
    times, values, lines = _parse_rows(src, rows, names, t_col, value_cols, problems)
    if len(rows) < 2:
        problems.append(Problem(src, "", "at least two rows are needed: the last row's time ends the rain"))
    elif lines and lines[-1] == rows[-1][0] and np.any(values[-1] != 0):
        wet = [names[value_cols[k]] for k in np.flatnonzero(values[-1])]
        problems.append(Problem(src, f"line {lines[-1]}, column {_listed(wet)}",
                                "the last row ends the rain (nothing falls from its time on), so its intensities "
                                "are never used; end the file with a row of zeros at the time the rain stops"))

    cell_column = None
    notes: list[Problem] = []
    if zones is not None and not header:
        if zone_ids is None:
            cell_column = np.where(zones.valid_mask(), 0, 1).astype(np.int32)
        else:
            cell_column, missing, notes = _map_zones(src, zones, zone_ids, [names[j] for j in value_cols])
            header += missing
    if header or problems:
        raise InputError(header + problems + notes)
    return RainSeries(times, values, tuple(names[j] for j in value_cols), zone_ids, cell_column, src, notes)


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _zone_ids_of_columns(src: str, names: list[str], value_cols: list[int], zones: Grid | None,
                         problems: list[Problem]) -> np.ndarray | None:
    """Zone id per intensity column, or None for one uniform column."""
    if zones is None:
        if len(value_cols) > 1:
            problems.append(Problem(src, "line 1", f"{len(value_cols)} intensity columns but no zone raster; "
                                                   "give the rain_zones raster or keep one column for uniform rain"))
        return None
    matches = [_ZONE_COLUMN.fullmatch(names[j]) for j in value_cols]
    if len(value_cols) == 1 and matches[0] is None:
        return None
    ids: dict[int, str] = {}
    for j, m in zip(value_cols, matches):
        if m is None:
            problems.append(Problem(src, f"line 1, column {names[j]}", "not a zone column; name zone columns "
                                                                       "zone_<id> (e.g. zone_3) or by the plain id"))
            continue
        zid = int(m.group(1))
        if zid in ids:
            problems.append(Problem(src, f"line 1, column {names[j]}", f"zone {zid} already has column {ids[zid]}"))
        ids.setdefault(zid, names[j])
    return np.array([int(m.group(1)) if m else -(2**62) for m in matches], dtype=np.int64)


def _parse_rows(src: str, rows: list[tuple[int, list[str]]], names: list[str], t_col: int, value_cols: list[int],
                problems: list[Problem]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Times, intensities and line numbers of the good rows; each bad field reported with line and column."""
    lines: list[int] = []
    times: list[float] = []
    values: list[list[float]] = []
    prev: tuple[float, int] | None = None
    for line, fields in rows:
        if len(fields) != len(names):
            problems.append(Problem(src, f"line {line}", f"{len(fields)} values but the header names {len(names)} columns"))
            continue
        row_ok = True
        t = math.nan
        if t_col >= 0:
            t, msg = _number(fields[t_col])
            if msg:
                problems.append(Problem(src, f"line {line}, column time_s", msg))
                row_ok = False
            elif prev is not None and t <= prev[0]:
                problems.append(Problem(src, f"line {line}, column time_s",
                                        f"time {fields[t_col].strip()} s is not after {prev[0]:g} s on line "
                                        f"{prev[1]}; times must increase strictly"))
            if not msg:
                prev = (t, line) if prev is None or t > prev[0] else prev
        row: list[float] = []
        for j in value_cols:
            v, msg = _number(fields[j])
            if not msg and v < 0:
                msg = f"{fields[j].strip()} mm/h is negative; rain intensities are >= 0"
            if msg:
                problems.append(Problem(src, f"line {line}, column {names[j]}", msg))
                row_ok = False
            row.append(v)
        if row_ok:
            lines.append(line)
            times.append(t)
            values.append(row)
    shape = (len(times), len(value_cols))
    return np.array(times, dtype=np.float64), np.array(values, dtype=np.float64).reshape(shape), lines


def _number(text: str) -> tuple[float, str]:
    """The value of a field, or a message saying why it is not a finite number."""
    s = text.strip()
    if not s:
        return math.nan, "empty value; write 0 for no rain"
    try:
        v = float(s)
    except ValueError:
        return math.nan, f"{s!r} is not a number"
    return (v, "") if math.isfinite(v) else (math.nan, f"{s!r} is not a finite number")


def _map_zones(src: str, zones: Grid, zone_ids: np.ndarray, columns: list[str]
               ) -> tuple[np.ndarray, list[Problem], list[Problem]]:
    """Per-cell column index (``len(columns)`` for cells without a zone), missing zones and unused columns."""
    zname = zones.source or zones.name or "the zone raster"
    valid = zones.valid_mask().ravel()
    cell_ids = np.rint(zones.values.ravel()[valid]).astype(np.int64)
    order = np.argsort(zone_ids, kind="stable")
    sorted_ids = zone_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, cell_ids), len(sorted_ids) - 1)
    hit = sorted_ids[pos] == cell_ids
    col = order[pos]
    cell_column = np.full(valid.shape, len(columns), dtype=np.int32)
    cell_column[np.flatnonzero(valid)[hit]] = col[hit]
    missing: list[Problem] = []
    lost_ids, lost_counts = np.unique(cell_ids[~hit], return_counts=True)
    for zid, count in zip(lost_ids.tolist()[:_MAX_LISTED], lost_counts.tolist()):
        missing.append(Problem(src, f"line 1, column zone_{zid}",
                               f"no column for zone {zid} ({count} cells in {zname}); add a column zone_{zid}"))
    if len(lost_ids) > _MAX_LISTED:
        rest = ", ".join(str(z) for z in lost_ids[_MAX_LISTED:].tolist())
        missing.append(Problem(src, "line 1", f"no columns either for zones {rest}"))
    counts = np.bincount(col[hit], minlength=len(columns))
    notes = [Problem(src, f"line 1, column {columns[k]}", f"zone {zone_ids[k]} has no cell in {zname}; column not used")
             for k in np.flatnonzero(counts == 0)]
    return cell_column.reshape(zones.shape), missing, notes


# ----------------------------------------------------------------------------- design storms


@dataclass(frozen=True)
class StormFormula:
    """Storm intensity formula q = A (1 + C lg P) / (t + b)^n as Chinese cities publish it.

    q in L/(s·ha), t (duration) in minutes, P (return period) in years.
    """

    name: str
    A: float
    C: float
    b: float
    n: float
    source: str

    def coefficients(self) -> dict[str, float]:
        """A, C, b, n as keyword arguments for :func:`chicago_hyetograph`."""
        return {"A": self.A, "C": self.C, "b": self.b, "n": self.n}

    def intensity_mm_per_h(self, duration_min: float | np.ndarray, return_period_years: float) -> float | np.ndarray:
        """Mean intensity (mm/h) over the most intense ``duration_min`` of a P-year storm."""
        return storm_intensity_mm_per_h(**self.coefficients(), return_period_years=return_period_years,
                                        duration_min=duration_min)


#: Published formulas, as commonly cited in Chinese drainage literature.  Check a
#: city's current official formula before design use: cities revise them.
STORM_FORMULAS: dict[str, StormFormula] = {
    f.name.lower(): f for f in (
        StormFormula("Jinan", 1421.481, 0.932, 7.347, 0.617,
                     "Jinan formula as commonly cited in hydrology papers on Jinan; not checked against "
                     "the issuing document"),
        StormFormula("Beijing", 2001.0, 0.811, 8.0, 0.711,
                     "single Beijing formula of Chinese drainage design handbooks; Beijing has since "
                     "published zoned formulas (DB11/T 969-2016)"),
        StormFormula("Shanghai", 1600.0, 0.846, 7.0, 0.656,
                     "Shanghai formula of DB31/T 1043-2017 as commonly cited; not checked against the standard"),
    )
}


def parse_storm_formula(text: str) -> StormFormula:
    """A formula of :data:`STORM_FORMULAS` by name (any case), or one given as ``"A,C,b,n"``.

    Raises ValueError naming the known formulas, or what is wrong with the numbers.
    """
    named = STORM_FORMULAS.get(text.strip().lower())
    if named is not None:
        return named
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise ValueError(f"{text!r} is neither a known formula ({', '.join(f.name for f in STORM_FORMULAS.values())}) "
                         "nor four numbers A,C,b,n of q = A (1 + C lg P) / (t + b)^n (q in L/(s ha), t in min)")
    try:
        a, c, b, n = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{text!r}: A,C,b,n must be four numbers, e.g. 2001,0.811,8,0.711") from None
    if not all(math.isfinite(v) for v in (a, c, b, n)):
        raise ValueError(f"{text!r}: A,C,b,n must be finite numbers")
    return StormFormula("A,C,b,n", a, c, b, n, f"given as {text.strip()}")


def storm_intensity_mm_per_h(*, A: float, C: float, b: float, n: float, return_period_years: float,
                             duration_min: float | np.ndarray) -> float | np.ndarray:
    """q = A (1 + C lg P) / (t + b)^n in L/(s·ha), returned in mm/h."""
    t = np.asarray(duration_min, dtype=np.float64)
    q = A * (1.0 + C * math.log10(return_period_years)) / (t + b) ** n
    return l_per_s_ha_to_mm_per_h(q if q.ndim else float(q))


def chicago_cumulative_mm(t_s: np.ndarray | float, *, A: float, C: float, b: float, n: float,
                          return_period_years: float, duration_s: float,
                          peak_position_r: float = 0.4) -> np.ndarray:
    """Rain depth (mm) from the storm's start to ``t_s`` of the Keifer & Chu (1957) design storm.

    With a = A (1 + C lg P) and H(x) = a x / (x + b)^n the IDF depth over x
    minutes, the depth within ``s`` minutes before the peak is r H(s / r) and
    within ``s`` after it (1 - r) H(s / (1 - r)).  Its derivative is the
    instantaneous intensity a [(1 - n) s/r + b] / (s/r + b)^(1 + n), and any
    window with the peak at fraction r of it holds H(width): the IDF depth.
    """
    a_mm_per_h = l_per_s_ha_to_mm_per_h(A * (1.0 + C * math.log10(return_period_years)))
    r = peak_position_r
    total_min = duration_s / S_PER_MIN
    peak_min = r * total_min
    t_min = np.clip(np.asarray(t_s, dtype=np.float64) / S_PER_MIN, 0.0, total_min)

    def part(s_min: np.ndarray, frac: float) -> np.ndarray:
        # frac · H(s / frac) in mm; zero when that side of the peak is empty.
        s_min = np.asarray(s_min, dtype=np.float64)
        if frac <= 0.0:
            return np.zeros_like(s_min)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = a_mm_per_h * s_min / (s_min / frac + b) ** n / S_PER_MIN
        return np.where(s_min > 0.0, depth, 0.0)

    before_total = part(np.asarray(peak_min), r)
    return np.where(t_min <= peak_min,
                    before_total - part(peak_min - np.minimum(t_min, peak_min), r),
                    before_total + part(np.maximum(t_min - peak_min, 0.0), 1.0 - r))


def chicago_hyetograph(*, A: float, C: float, b: float, n: float, return_period_years: float, duration_s: float,
                       step_s: float, peak_position_r: float = 0.4) -> RainSeries:
    """Keifer & Chu (1957) design storm from q = A (1 + C lg P)/(t + b)^n, averaged over each step.

    The step averages are differences of the exact cumulative depth, so the
    total is the IDF depth i(T) T and every window with the peak at fraction r
    holds the IDF depth for its width.  Uniform rain; the last step is shorter
    when ``duration_s`` is not a multiple of ``step_s``.
    """
    where = "chicago_hyetograph"
    problems = [Problem(where, name, msg) for name, bad, msg in (
        ("A", not A > 0, f"{A!r} must be > 0"),
        ("b", not b >= 0, f"{b!r} must be >= 0"),
        ("n", not 0 <= n < 1, f"{n!r} must be in [0, 1) for positive intensities on both sides of the peak"),
        ("return_period_years", not return_period_years > 0, f"{return_period_years!r} must be > 0 years"),
        ("duration_s", not duration_s > 0, f"{duration_s!r} must be > 0 s"),
        ("step_s", not 0 < step_s <= duration_s, f"{step_s!r} must be > 0 s and at most the duration"),
        ("peak_position_r", not 0 <= peak_position_r <= 1, f"{peak_position_r!r} must be in [0, 1]"),
    ) if bad]
    if not problems and 1.0 + C * math.log10(return_period_years) <= 0:
        problems.append(Problem(where, "C", f"1 + C lg P = {1.0 + C * math.log10(return_period_years):g} is not > 0"))
    if problems:
        raise InputError(problems)
    edges = np.append(np.arange(0.0, duration_s, step_s), duration_s)
    if edges[-1] - edges[-2] < 1e-9 * step_s:
        edges = np.delete(edges, -2)
    cum = chicago_cumulative_mm(edges, A=A, C=C, b=b, n=n, return_period_years=return_period_years,
                                duration_s=duration_s, peak_position_r=peak_position_r)
    mean_mm_per_h = np.diff(cum) / (np.diff(edges) / S_PER_H)
    values = np.append(mean_mm_per_h, 0.0)[:, None]
    meta = {"A": A, "C": C, "b": b, "n": n, "return_period_years": return_period_years, "duration_s": duration_s,
            "step_s": step_s, "peak_position_r": peak_position_r, "total_mm": float(cum[-1])}
    return RainSeries(edges, values, ("rain_mm_per_h",), source="chicago_hyetograph", meta=meta)


# ----------------------------------------------------------------------------- infiltration

INFILTRATION_CSV = Path(__file__).with_name("data") / "infiltration_classes.csv"
_INFILTRATION_NUMBERS = ("f0_mm_per_h", "fc_mm_per_h", "k_per_h", "Ks_mm_per_h", "psi_mm", "delta_theta")
_INFILTRATION_COLUMNS = ("code", *_INFILTRATION_NUMBERS, "source")


def load_infiltration_table(path: str | PathLike[str] | None = None) -> pd.DataFrame:
    """Per-class Horton (f0, fc in mm/h, k in 1/h) and Green-Ampt (Ks mm/h, psi mm, delta_theta) parameters."""
    path = Path(path) if path is not None else INFILTRATION_CSV
    src = str(path)
    if not path.is_file():
        raise input_error(path, "", "infiltration table not found")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fieldnames = [f.strip() for f in reader.fieldnames or []]
        reader.fieldnames = fieldnames
        records = [(reader.line_num, {k: (v or "") for k, v in r.items() if k is not None})
                   for r in reader if any((v or "").strip() for v in r.values() if isinstance(v, str))]
    problems = [Problem(src, "line 1", f"no {c} column") for c in _INFILTRATION_COLUMNS if c not in fieldnames]
    if problems:
        raise InputError(problems)
    seen: dict[str, int] = {}
    numbers = {c: np.zeros(len(records)) for c in _INFILTRATION_NUMBERS}
    for i, (line, rec) in enumerate(records):
        code = rec["code"].strip()
        if not re.fullmatch(r"\d{2}", code):
            problems.append(Problem(src, f"line {line}, column code", f"{code!r} is not a two-digit land class code"))
        elif code in seen:
            problems.append(Problem(src, f"line {line}, column code", f"class {code} is already on line {seen[code]}"))
        seen.setdefault(code, line)
        row_ok = True
        for c in _INFILTRATION_NUMBERS:
            v, msg = _number(rec[c])
            if not msg and v < 0:
                msg = f"{v:g} is negative"
            if not msg and c == "delta_theta" and v >= 1:
                msg = f"{v:g} is not a soil moisture deficit below 1"
            if msg:
                problems.append(Problem(src, f"line {line}, column {c}", msg))
                row_ok = False
            numbers[c][i] = v
        if row_ok and numbers["f0_mm_per_h"][i] < numbers["fc_mm_per_h"][i]:
            problems.append(Problem(src, f"line {line}, column f0_mm_per_h", "f0 is below fc; Horton rates decay"))
        if not rec["source"].strip():
            problems.append(Problem(src, f"line {line}, column source", "say where the values come from"))
    if problems:
        raise InputError(problems)
    out = pd.DataFrame([{k: v.strip() for k, v in rec.items()} for _, rec in records], columns=fieldnames)
    for c in _INFILTRATION_NUMBERS:
        out[c] = numbers[c]
    out.attrs["source"] = src
    return out


def land_class_codes(landcover: Grid, value_to_code: Mapping[int | str, str]) -> np.ndarray:
    """Land class code per cell as an integer ("01" -> 1, "20" -> 20), -1 for nodata or unmapped values."""
    lut = {int(v): int(c) for v, c in value_to_code.items() if re.fullmatch(r"[+-]?\d+", str(v))}
    values = landcover.values
    valid = landcover.valid_mask()
    out = np.full(values.shape, -1, dtype=np.int16)
    cells = np.rint(values[valid]).astype(np.int64)
    codes = np.full(cells.shape, -1, dtype=np.int16)
    for v, c in lut.items():
        codes[cells == v] = c
    out[valid] = codes
    return out


def _class_index(class_per_cell: np.ndarray, codes: Iterable[str], src: str) -> np.ndarray:
    """Row of the table per cell (-1 for no class), from integer or string class codes."""
    table_codes = [int(c) for c in codes]
    cls = np.asarray(class_per_cell)
    if cls.dtype.kind in "iu":
        lut = np.full(100, -1, dtype=np.int16)
        lut[table_codes] = np.arange(len(table_codes))
        inside = (cls >= 0) & (cls < 100)
        index = np.full(cls.shape, -1, dtype=np.int16)
        index[inside] = lut[cls[inside]]
        unknown = np.unique(cls[((cls >= 100) | (inside & (index < 0)))])
        names = [f"{int(c):02d}" for c in unknown]
    else:
        uniq, inverse = np.unique(cls.astype(str), return_inverse=True)
        rows = np.array([table_codes.index(int(u)) if u.isdigit() and int(u) in table_codes else -1 for u in uniq],
                        dtype=np.int16)
        index = rows[inverse].reshape(cls.shape)
        names = [u for u, r in zip(uniq.tolist(), rows.tolist()) if r < 0 and u not in ("", "-1", "None", "nan")]
    if names:
        raise InputError([Problem(src, "code", f"land class {n} is on the grid but has no row; add one") for n in names])
    return index


class Infiltration:
    """Infiltration per cell by land class, Green-Ampt or Horton, with cumulative depth F (m) as state.

    Both models integrate the ponded capacity exactly over a step (Green-Ampt:
    the implicit equation F2 - F1 - S ln((F2 + S)/(F1 + S)) = Ks dt with
    S = psi delta_theta, solved by Newton; Horton: the integrated form
    Fp(t) = fc t + (f0 - fc)(1 - e^(-k t))/k, with the equivalent time t found
    from F).  The step takes the smaller of that capacity and the water at hand
    (depth + rain dt): a supply-limited step is the unponded regime, where all
    water soaks in.  Because Horton's decay follows F, not the clock, a dry
    spell does not use up capacity.  Soil does not recover between storms.
    """

    def __init__(self, model: str, class_per_cell: np.ndarray, table: pd.DataFrame | str | PathLike[str] | None = None):
        if model not in ("green_ampt", "horton"):
            raise InputError(Problem("infiltration", "model", f"{model!r} is not 'green_ampt' or 'horton'"))
        table = load_infiltration_table(table) if not isinstance(table, pd.DataFrame) else table
        self.model = model
        self.kind = SOIL_GREEN_AMPT if model == "green_ampt" else SOIL_HORTON
        self.table = table
        self.shape = np.shape(class_per_cell)
        self.class_index = _class_index(class_per_cell, table["code"], table.attrs.get("source", "infiltration table"))
        flat = self.class_index.ravel()
        # one byte a cell where the table allows: the step streams this array over the whole grid
        self._class_flat = np.ascontiguousarray(flat, dtype=np.int8 if len(table) < 128 else np.int32)
        if model == "green_ampt":
            self._p1 = mm_per_h_to_m_per_s(table["Ks_mm_per_h"].to_numpy(np.float64))
            self._p2 = table["psi_mm"].to_numpy(np.float64) * M_PER_MM * table["delta_theta"].to_numpy(np.float64)
            self._p3 = np.zeros(len(table))
        else:
            self._p1 = mm_per_h_to_m_per_s(table["f0_mm_per_h"].to_numpy(np.float64))
            self._p2 = mm_per_h_to_m_per_s(table["fc_mm_per_h"].to_numpy(np.float64))
            self._p3 = table["k_per_h"].to_numpy(np.float64) / S_PER_H
        self.cumulative_m = np.zeros(self.shape, dtype=np.float64)

    def sink_m_per_s(self, depth_m: np.ndarray, dt_s: float, rain_m_per_s: np.ndarray | float = 0.0,
                     *, advance: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """Infiltration rate (m/s) per cell over the next ``dt_s``, at most (depth + rain dt)/dt.

        With ``advance`` the returned rate is added to the cumulative depth:
        the caller is expected to remove exactly that water.  ``out`` (float64,
        the depth's shape) receives the rates, so that a caller stepping a
        large grid does not allocate a new array each step.
        """
        return self._step(depth_m, dt_s, rain_m_per_s, advance, out, False)

    def net_rate_m_per_s(self, depth_m: np.ndarray, dt_s: float, rain_m_per_s: np.ndarray | float,
                         *, out: np.ndarray | None = None) -> np.ndarray:
        """Rain minus infiltration (m/s) per cell over the next ``dt_s``, advancing the cumulative depth.

        The same numbers as ``rain - sink_m_per_s(...)``, in one pass over the
        grid (the step streams every array it touches from memory).
        """
        return self._step(depth_m, dt_s, rain_m_per_s, True, out, True)

    def _step(self, depth_m: np.ndarray, dt_s: float, rain_m_per_s: np.ndarray | float, advance: bool,
              out: np.ndarray | None, net: bool) -> np.ndarray:
        depth = np.ascontiguousarray(depth_m).reshape(-1)
        if depth.size != self._class_flat.size:
            raise ValueError(f"depth has {depth.size} cells, the land classes {self._class_flat.size}")
        rain = np.ascontiguousarray(np.asarray(rain_m_per_s, dtype=np.float64)).reshape(-1)
        if rain.size not in (1, depth.size):
            raise ValueError(f"rain has {rain.size} cells, the land classes {depth.size}")
        if out is None:
            out = np.empty(depth.shape, dtype=depth.dtype if depth.dtype.kind == "f" else np.float64)
        elif out.size != depth.size or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a contiguous float64 array of {depth.size} cells")
        _soil_step(self.kind, depth, rain, float(dt_s), self._class_flat, self._p1, self._p2, self._p3,
                   self.cumulative_m.reshape(-1), out.reshape(-1), advance, net)
        return out.reshape(np.shape(depth_m))

    def reset(self) -> None:
        self.cumulative_m[...] = 0.0


@numba.njit(cache=True, inline="always")
def _h_series(y: float) -> float:
    """y - ln(1 + y) by its series to y^6 (error under 4e-16 relative for y < 1e-3)."""
    return y * y * (0.5 - y * (1.0 / 3.0 - y * (0.25 - y * (0.2 - y * (1.0 / 6.0)))))


@numba.njit(cache=True, inline="always")
def _y_minus_log1p(y: float) -> float:
    """y - ln(1 + y) for y >= 0, without cancellation: its series below y = 1e-3 (the next term is under
    1e-16 of the sum there), the logarithm above."""
    if y < 1e-3:
        return _h_series(y)
    return y - math.log1p(y)


@numba.njit(cache=True, inline="always")
def _y_over_1p(y: float) -> float:
    """y / (1 + y) for y >= 0: its series below y = 1e-3 (error under 1e-15), a division above."""
    if y < 1e-3:
        return _y_over_1p_series(y)
    return y / (1.0 + y)


@numba.njit(cache=True, inline="always")
def _y_over_1p_series(y: float) -> float:
    return y * (1.0 - y * (1.0 - y * (1.0 - y * (1.0 - y))))


@numba.njit(cache=True, inline="always")
def _green_ampt_short_m(f1_m: float, suction_m: float, ks_dt_m: float) -> tuple[float, float]:
    """(increment m, y of the start) of ``green_ampt_increment_m`` for a short step, without a branch.

    Exact (to round-off) where the start's y is at most 1e-3 and Ks dt, S > 0;
    otherwise the caller solves with the loop.  Series only, so that a loop of
    these over many cells runs in vectors.
    """
    big = f1_m + suction_m
    inv_big = 1.0 / big
    # F1 y + S y^2/2 = Ks dt (h(y) <= y^2/2, so this y is low), then the y^3 term of h to first order
    y = 2.0 * ks_dt_m / (f1_m + math.sqrt(f1_m * f1_m + 2.0 * suction_m * ks_dt_m))
    y += suction_m * y * y * y / (3.0 * (f1_m + suction_m * y))
    u = y * big
    # The start is within y^2/4 (relative) of the root, and one Newton step squares that (see
    # green_ampt_increment_m): the short steps of a flood run need no loop.
    yu = u * inv_big
    g = yu * f1_m + suction_m * _h_series(yu) - ks_dt_m
    return max(u - g / ((f1_m + suction_m * _y_over_1p_series(yu)) * inv_big), 0.0), y


#: Bounds on z = Ks dt / F1 and w = (S / F1) z within which ``_green_ampt_ponded_m`` is exact to round-off.
_PONDED_Z_MAX, _PONDED_W_MAX = 1e-3, 2e-2


@numba.njit(cache=True, inline="always")
def _green_ampt_ponded_m(f1_m: float, suction_m: float, ks_dt_m: float) -> tuple[float, bool]:
    """(increment m, whether it is exact) of ``green_ampt_increment_m`` for a soil that has taken water.

    Divided by F1, the step equation reads g(y) = y + s h(y) - z = 0 with
    s = S/F1 and z = Ks dt/F1.  Its root's series y = z - s z^2/2 + (s/3 +
    s^2/2) z^3 is within about 1.7 m^3 (relative) of it, m = max(z, w),
    w = s z.  A Newton step with the exact slope 1 + s y/(1 + y) leaves at
    most half the square of a relative error (g''/2g' <= 1/(2y)), and a
    second with the same slope, whose change over the first step is about w
    times that step, takes the rest: from 1.4e-5 at the bounds to 9e-11,
    then to round-off.  So where z <= 1e-3 and w <= 0.02 (``_PONDED_*_MAX``)
    the result is exact to round-off with one division a cell besides 1/F1,
    and the many ponded cells of a storm solve in vectors.  (With one step
    and w <= 2e-3, a clay soil a couple of millimetres in, w near 2.1e-3 at
    2 s source steps, fell to the scalar loop on a third of Carlisle's wet
    cells.)  The answer is marked not exact where F1 = 0 or a bound is passed.
    """
    inv_f1 = 1.0 / f1_m
    z = ks_dt_m * inv_f1
    s = suction_m * inv_f1
    y = z * (1.0 + z * (-0.5 * s + z * (s * (1.0 / 3.0 + 0.5 * s))))
    inv_slope = 1.0 / (1.0 + s * _y_over_1p_series(y))
    y -= (y + s * _h_series(y) - z) * inv_slope
    y -= (y + s * _h_series(y) - z) * inv_slope
    exact = (f1_m > 0.0) & (z <= _PONDED_Z_MAX) & (s * z <= _PONDED_W_MAX)
    return max(y * (f1_m + suction_m), 0.0), exact


@numba.njit(cache=True, inline="always")
def _green_ampt_lhs_m(u_m: float, f1_m: float, suction_m: float, inv_big: float) -> float:
    """Left side u F1/B + S h(u/B) of the implicit Green-Ampt step equation (= Ks dt at the solution);
    ``inv_big`` is 1/B."""
    y = u_m * inv_big
    return y * f1_m + suction_m * _y_minus_log1p(y)


@numba.njit(cache=True)
def green_ampt_increment_m(f1_m: float, suction_m: float, ks_dt_m: float) -> float:
    """Ponded Green-Ampt infiltration (m) in a step from cumulative ``f1_m``: exact, by Newton.

    Solves F1 y + S h(y) = Ks dt for y = u/B, B = F1 + S, h(y) = y - ln(1 + y)
    (the implicit equation rewritten to avoid cancellation for short steps).
    A soil that has taken water, at a short step, is solved by a series and
    one Newton step (``_green_ampt_ponded_m``).  Otherwise the start solves it
    with h's series cut after y^3, so that for short steps one Newton step
    lands on the root (``_green_ampt_short_m``); else one division an
    iteration (B is inverted once, and h'(y) = y/(1 + y) is a series for small y).
    """
    if ks_dt_m <= 0.0:
        return 0.0
    if suction_m <= 0.0:
        return ks_dt_m
    if f1_m > 0.0:
        u, exact = _green_ampt_ponded_m(f1_m, suction_m, ks_dt_m)
        if exact:
            return u
    short, y = _green_ampt_short_m(f1_m, suction_m, ks_dt_m)
    if y <= 1e-3:
        return short
    inv_big = 1.0 / (f1_m + suction_m)
    u = y * (f1_m + suction_m)
    if f1_m > 0.0:
        # The rate falls as F grows, so the step's start rate bounds the increment.
        u = min(u, ks_dt_m * (1.0 + suction_m / f1_m))
    # Convex, increasing residual: Newton converges (from the left, its first step lands right of the root).
    # After a step of relative size e the error is at most e^2/2 (g'' u / 2 g' <= 1/2), so 1e-7 ends it.
    for _ in range(100):
        g = _green_ampt_lhs_m(u, f1_m, suction_m, inv_big) - ks_dt_m
        dg = (f1_m + suction_m * _y_over_1p(u * inv_big)) * inv_big
        if dg <= 0.0:
            break
        step = g / dg
        u -= step
        if abs(step) <= 1e-7 * u:
            break
    return max(u, 0.0)


@numba.njit(cache=True)
def horton_increment_m(f_m: float, f0: float, fc: float, k: float, dt: float) -> float:
    """Ponded Horton infiltration (m) in a step from cumulative ``f_m`` (rates m/s, k 1/s), exact.

    Finds the equivalent time t with Fp(t) = F, then returns Fp(t + dt) - Fp(t).
    """
    if f0 <= 0.0:
        return 0.0
    if k <= 0.0 or f0 == fc:
        return f0 * dt
    span = (f0 - fc) / k
    if fc <= 0.0 and f_m >= span * (1.0 - 1e-12):
        return 0.0
    t = f_m / f0
    # Concave, increasing Fp: Newton from the left converges monotonically.
    for _ in range(200):
        e = math.exp(-k * t)
        g = fc * t + span * (1.0 - e) - f_m
        dg = fc + (f0 - fc) * e
        if dg <= 0.0:
            break
        step = -g / dg
        t += step
        if abs(step) <= 1e-13 * t:
            break
    return fc * dt - span * math.exp(-k * t) * math.expm1(-k * dt)


@numba.njit(cache=True, inline="always")
def _soaks_in(f1_m: float, suction_m: float, ks_dt_m: float, supply_m: float) -> bool:
    """Whether ponded Green-Ampt capacity over the step is at least ``supply_m`` (then all of it soaks in).

    The residual of ``green_ampt_increment_m`` grows with the increment, so
    the capacity reaches the supply exactly when the residual at the supply
    is not positive: one evaluation in place of a Newton solve, for the many
    cells whose soil could take more than the water at hand.  For y < 1e-3
    the series of h lies between y^2/2 - y^3/3 and y^2/2; those bounds, made
    wider by 1e-9 (far above round-off), settle nearly every cell without the
    series' long chain of dependent operations, and with its answer.
    """
    if not suction_m > 0.0:
        return False
    inv_big = 1.0 / (f1_m + suction_m)
    y = supply_m * inv_big
    if y < 1e-3:
        base, half_y2 = y * f1_m, suction_m * (0.5 * y * y)
        if base + half_y2 * (1.0 + 1e-9) <= ks_dt_m:
            return True
        if base + half_y2 * ((1.0 - (2.0 / 3.0) * y) * (1.0 - 1e-9)) > ks_dt_m:
            return False
    return _green_ampt_lhs_m(supply_m, f1_m, suction_m, inv_big) <= ks_dt_m


@numba.njit(cache=True, inline="always")
def _all_soaks_in(avail_m, f1_m, suction_m, ks_dt_m):
    """Whether Green-Ampt's capacity over the step takes all of ``avail_m``.

    Capacity is at most the step's start rate times dt, Ks dt (1 + S/F1): a
    ponded cell's supply is well above that and needs no further test.
    """
    ponded = f1_m > 0.0 and avail_m * f1_m > ks_dt_m * (f1_m + suction_m)
    return not ponded and (avail_m <= ks_dt_m or _soaks_in(f1_m, suction_m, ks_dt_m, avail_m))


#: Soil models by number, as the compiled row step takes them.
SOIL_NONE, SOIL_GREEN_AMPT, SOIL_HORTON = 0, 1, 2


@numba.njit(cache=True, inline="always")
def _soil_take_m(kind, avail_m, f1_m, p1, p2, p3, dt):
    """Water (m) the soil takes in a step from a cell with ``avail_m`` > 0 at hand and cumulative ``f1_m``.

    Green-Ampt (p1 = Ks m/s, p2 = suction S m) or Horton (p1 = f0, p2 = fc m/s,
    p3 = k 1/s).  A supply below the step's least capacity (Ks dt, fc dt)
    soaks in without solving.
    """
    if kind == SOIL_GREEN_AMPT:
        ks_dt = p1 * dt
        if _all_soaks_in(avail_m, f1_m, p2, ks_dt):
            return avail_m
        if f1_m > 0.0 and ks_dt > 0.0 and p2 > 0.0:  # green_ampt_increment_m's first case, inlined
            u, exact = _green_ampt_ponded_m(f1_m, p2, ks_dt)
            if exact:
                return min(u, avail_m)
        return min(green_ampt_increment_m(f1_m, p2, ks_dt), avail_m)
    if avail_m <= p2 * dt:
        return avail_m
    return min(horton_increment_m(f1_m, p1, p2, p3, dt), avail_m)


@numba.njit(cache=True, parallel=True)
def _soil_step(kind, depth, rain, dt, cls, p1, p2, p3, cum, out, advance, net):
    """Infiltration rate per cell into ``out`` (with ``net``: the rain minus it)."""
    single = rain.size == 1
    per_s = 1.0 / dt  # rates are depths times 1/dt, in every path, so that they agree to the bit
    for i in numba.prange(depth.size):
        c = cls[i]
        r = rain[0] if single else rain[i]
        avail = depth[i] + r * dt
        if c < 0 or avail <= 0.0:
            out[i] = r if net else 0.0
            continue
        take = _soil_take_m(kind, avail, cum[i], p1[c], p2[c], p3[c], dt)
        if advance:
            cum[i] += take
        out[i] = r - take * per_s if net else take * per_s


@numba.njit(cache=True, inline="always")
def _green_ampt_cells(depth, rain, ks_dt, suction, cum, dt, per_s, out, hard):
    """Green-Ampt on a row of cells, branch-free so that it runs in vectors.

    Returns (cells left, wet cells with soil, cells ponded).

    Per cell: rain (m/s), Ks dt and S of its class (0 where nothing soaks
    in), cumulative depth ``cum`` (advanced here).  Writes rain minus
    infiltration into ``out`` (``per_s`` = 1/dt).  The cases are those of
    ``_soil_take_m`` and give its numbers: every case is computed and the
    cell's one selected.  A cell none of them settles (fresh soil under a
    deep supply: ``_soaks_in``'s logarithm or ``green_ampt_increment_m``'s
    loop) is marked in ``hard``, keeps its cumulative depth and rain, and is
    counted for the caller.
    """
    left = wet_cells = ponded_cells = 0
    for i in range(depth.size):
        r, e, s, f1 = rain[i], ks_dt[i], suction[i], cum[i]
        avail = depth[i] + r * dt
        big = f1 + s
        y = avail * (1.0 / big)  # _soaks_in's supply test, by series (y < 1e-3)
        series = y < 1e-3
        within = y * f1 + s * _h_series(y) <= e
        ponded = (f1 > 0.0) & (avail * f1 > e * big)  # _all_soaks_in's start-rate bound
        u, solved = _green_ampt_ponded_m(f1, s, e)
        soil = (avail > 0.0) & (e > 0.0) & (s > 0.0)
        soaks = (not ponded) & ((avail <= e) | (series & within))
        capped = ponded | (series & (not within))  # takes its capacity: all soaks in only if that is less
        unsettled = soil & (not soaks) & (not (capped & solved))
        take = avail if soaks else min(u, avail)
        if not soil:
            take = min(e, avail) if (avail > 0.0) & (e > 0.0) else 0.0
        if unsettled:
            take = 0.0
        cum[i] = f1 + take
        out[i] = r - take * per_s
        hard[i] = unsettled
        left += unsettled
        wet_cells += (avail > 0.0) & (e > 0.0)
        ponded_cells += soil & ponded & solved
    return left, wet_cells, ponded_cells


@numba.njit(cache=True, inline="always")
def _green_ampt_ponded_cells(depth, rain, ks_dt, suction, cum, dt, per_s, out, hard):
    """``_green_ampt_cells`` for a row whose wet cells were all ponded the step before: half the work.

    Only the ponded case is computed (and cells without suction); any other
    wet cell is left to the caller, as that function leaves its hard cases.
    Returns (cells left, wet cells with soil, ponded cells).
    """
    left = wet_cells = ponded_cells = 0
    for i in range(depth.size):
        r, e, s, f1 = rain[i], ks_dt[i], suction[i], cum[i]
        avail = depth[i] + r * dt
        ponded = (f1 > 0.0) & (avail * f1 > e * (f1 + s))
        u, exact = _green_ampt_ponded_m(f1, s, e)
        solved = ponded & exact
        wet = (avail > 0.0) & (e > 0.0)
        soil = wet & (s > 0.0)
        unsettled = soil & (not solved)
        take = min(u, avail) if soil else (min(e, avail) if wet else 0.0)
        if unsettled:
            take = 0.0
        cum[i] = f1 + take
        out[i] = r - take * per_s
        hard[i] = unsettled
        left += unsettled
        wet_cells += wet
        ponded_cells += solved
    return left, wet_cells, ponded_cells


@numba.njit(cache=True, inline="always")
def _fill_runs(cells, r, lo, hi, dt, rs, ks_dts, suctions):
    """Each cell's rain (m/s), Ks dt and S on the span [lo, hi) of row ``r`` (from index 0), from the row's runs.

    Zone and land class are constant along runs (about 12 cells in Carlisle),
    so this stores constants, in vectors, where a lookup per cell would run
    scalar.  A run is written in whole blocks of 8 (one vector store each, no
    remainder loop): its last block runs on into the next run's cells, which
    that run then writes, and past the span's end where the rows have room
    (the solver's row buffers do; elsewhere the last cells go one by one).
    """
    room = min(rs.size, ks_dts.size, suctions.size)
    for k in range(cells.run_ptr[r], cells.run_ptr[r + 1]):
        a, b = max(cells.run_start[k], lo) - lo, min(cells.run_end[k], hi) - lo
        if a >= b:
            continue
        c = cells.run_class[k]
        rv, ev, sv = cells.rain[cells.run_zone[k]], cells.p1[c] * dt, cells.p2[c]
        j = a
        while j < b and j + 8 <= room:
            fill8(rs, j, rv)
            fill8(ks_dts, j, ev)
            fill8(suctions, j, sv)
            j += 8
        for i in range(j, b):
            rs[i], ks_dts[i], suctions[i] = rv, ev, sv


#: A Green-Ampt row is solved in vectors when at least 1/this of its cells were wet the step before
#: (measured in Carlisle's first minutes of rain: 1/4 and 1/6 ran 15 % slower than 1/2, and 3/4 as fast).
_WET_SHARE_FOR_VECTORS = 2


@numba.njit(cache=True, inline="always")
def net_rain_row(cells, r, lo, hi, depth, dt, out, scratch):
    """Rain minus infiltration (m/s) on the span [lo, hi) of row ``r`` into ``out``, advancing cumulative depth.

    The numbers of ``Infiltration.net_rate_m_per_s`` on the row, from
    :class:`CellSources` (rain by zone, soil by land class) instead of a rate
    per cell: the solver calls this where it has just read the row's
    ``depth`` (the span's view), so that the step does not stream the grid a
    second time.  Green-Ampt solves a row in vectors (``_green_ampt_cells``)
    where at least half its cells were wet the step before (only the ponded
    case, ``_green_ampt_ponded_cells``, where 95 % of those were ponded); otherwise,
    and for Horton, the wet cells are solved one by one.  Both give the same
    numbers.  ``scratch``: four rows at least as long as the span.
    """
    n = hi - lo
    kind, rain_of, zone = cells.soil, cells.rain, cells.zone[r][lo:hi]
    if kind == SOIL_NONE:
        for i in range(n):
            out[i] = rain_of[zone[i]]
        return
    cum, cls = cells.cumulative[r][lo:hi], cells.soil_class[r][lo:hi]
    p1, p2, p3 = cells.p1, cells.p2, cells.p3
    per_s = 1.0 / dt
    if kind == SOIL_GREEN_AMPT and cells.row_wet[r] * _WET_SHARE_FOR_VECTORS >= n:
        _fill_runs(cells, r, lo, hi, dt, scratch[0], scratch[1], scratch[2])
        rs, ks_dts, suctions, hard = scratch[0][:n], scratch[1][:n], scratch[2][:n], scratch[3][:n]
        if cells.row_ponded[r] * 20 >= cells.row_wet[r] * 19:
            left, wet, ponded = _green_ampt_ponded_cells(depth, rs, ks_dts, suctions, cum, dt, per_s, out, hard)
        else:
            left, wet, ponded = _green_ampt_cells(depth, rs, ks_dts, suctions, cum, dt, per_s, out, hard)
        cells.row_wet[r], cells.row_ponded[r] = wet, ponded
        if left:
            for i in range(n):  # the cells it left: one by one
                if hard[i]:
                    c = cls[i]
                    avail = depth[i] + rs[i] * dt
                    take = _soil_take_m(kind, avail, cum[i], p1[c], p2[c], p3[c], dt)
                    cum[i] += take
                    out[i] = rs[i] - take * per_s
        return
    if cells.row_rain[r] <= 0.0:  # no rain on the row now: only wet soil makes a source, and rows rarely have any
        wet = 0
        for i in range(n):
            out[i] = 0.0
            wet += (depth[i] > 0.0) & (cls[i] > 0)
        if wet == 0:
            cells.row_wet[r], cells.row_ponded[r] = 0, 0
            return
    wet = 0
    for i in range(n):
        rain = rain_of[zone[i]]
        out[i] = rain
        avail = depth[i] + rain * dt
        if avail <= 0.0:
            continue
        c = cls[i]
        if c == 0:  # no soil (ZonedSources also gives 0 to classes with Ks or f0 of 0)
            continue
        f1 = cum[i]
        wet += 1
        take = _soil_take_m(kind, avail, f1, p1[c], p2[c], p3[c], dt)
        cum[i] = f1 + take
        out[i] = rain - take * per_s
    cells.row_wet[r], cells.row_ponded[r] = wet, 0


class CellSources(NamedTuple):
    """Rain by zone and infiltration by land class, in the form the solver's step applies them.

    The step reads one byte per cell for the zone and one for the land class
    where a net rate per cell would cost eight, and a separate pass over the
    grid.  ``soil`` is a ``SOIL_*`` number, or -1 when the solver's own
    source (uniform or per cell) applies instead.  Indices are unsigned and the
    parameter tables start with a row of zeros for cells without soil, so
    that the step looks them up without a branch or a wrap-around check.
    """

    soil: int
    zone: np.ndarray  # uint8 (rows, cols): index into ``rain``
    rain: np.ndarray  # float64: rain (m/s) of each zone now; the last entry is 0, for cells without rain
    soil_class: np.ndarray  # uint8 (rows, cols): land class + 1, 0 where nothing soaks in (also a class of Ks 0)
    p1: np.ndarray  # float64 per class + 1 (0: none): Ks (Green-Ampt) or f0 (Horton), m/s
    p2: np.ndarray  # float64 per class + 1: suction S = psi delta_theta (m), or fc (m/s)
    p3: np.ndarray  # float64 per class + 1: Horton's k (1/s)
    cumulative: np.ndarray  # float64 (rows, cols): infiltrated depth so far (m), advanced by the step
    row_rain: np.ndarray  # float64 per row: the most rain (m/s) on any of its cells now (0: a dry row may be skipped)
    row_wet: np.ndarray  # int64 per row: its wet cells with soil at the last step (the step's choice of solver)
    row_ponded: np.ndarray  # int64 per row: of those, the ones ponded (counted where the row was solved in vectors)
    run_ptr: np.ndarray  # int64 (rows + 1): row r's runs of one zone and land class are run_ptr[r] to run_ptr[r + 1]
    run_start: np.ndarray  # int64 per run: its first column
    run_end: np.ndarray  # int64 per run: the column after its last
    run_zone: np.ndarray  # uint8 per run: its zone
    run_class: np.ndarray  # uint8 per run: its land class + 1


#: The solver's argument when no cell sources are in use (the types its compiled step is built for).
_NO_BYTES, _NO_INTS = np.zeros((1, 1), dtype=np.uint8), np.zeros(1, dtype=np.int64)
NO_CELL_SOURCES = CellSources(
    soil=-1, zone=_NO_BYTES, rain=np.zeros(1), soil_class=_NO_BYTES, p1=np.zeros(1), p2=np.zeros(1), p3=np.zeros(1),
    cumulative=np.zeros((1, 1)), row_rain=np.zeros(1), row_wet=_NO_INTS, row_ponded=_NO_INTS,
    run_ptr=np.zeros(2, dtype=np.int64), run_start=_NO_INTS, run_end=_NO_INTS, run_zone=_NO_BYTES[0],
    run_class=_NO_BYTES[0])


def runs_by_row(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of cells along each row over which every one of ``keys`` (same-shape 2D arrays) stays the same.

    Returns ``ptr`` (rows + 1: row r's runs are ptr[r] to ptr[r + 1]), each
    run's ``start`` and ``end`` columns (end exclusive) and ``first`` (the
    flat index of each run's first cell, to read the keys there).
    """
    rows, cols = keys[0].shape
    change = np.zeros((rows, cols), dtype=bool)
    change[:, 0] = True
    for key in keys:
        change[:, 1:] |= key[:, 1:] != key[:, :-1]
    first = np.flatnonzero(change)
    ptr = np.concatenate(([0], np.cumsum(change.sum(axis=1)))).astype(np.int64)
    start = (first % cols).astype(np.int64)
    following = np.append(start[1:], 0)  # a row's next run, or 0 where a new row begins
    end = np.where(following > start, following, cols).astype(np.int64)
    return ptr, start, end, first


class ZonedSources:
    """Rain (uniform or per zone) and infiltration for the solver to apply inside its step.

    :meth:`at` gives the :class:`CellSources` of a time; the rain vector is the
    series' row, so each cell gets the same number ``RainSeries.rate_m_per_s``
    would give it.  Only for up to 127 rain columns and land classes (one
    byte per cell); :meth:`fits` says whether a pair qualifies.
    """

    def __init__(self, rain: RainSeries | None, infiltration: Infiltration | None, shape: tuple[int, int]) -> None:
        if not self.fits(rain, infiltration):
            raise ValueError("rain zones or land classes do not fit in one byte a cell; use a per-cell source_rate")
        self.rain = rain
        self.infiltration = infiltration
        self.shape = tuple(shape)
        if rain is not None and rain.cell_column is not None:
            if np.shape(rain.cell_column) != self.shape:
                raise ValueError(f"rain zones are {np.shape(rain.cell_column)}, the grid is {self.shape}")
            zone = np.ascontiguousarray(rain.cell_column, dtype=np.uint8)
        else:
            zone = np.zeros(self.shape, dtype=np.uint8)  # the series' one column on every cell
        if infiltration is not None:
            if infiltration.shape != self.shape:
                raise ValueError(f"land classes are {infiltration.shape}, the grid is {self.shape}")
            classes = (infiltration._class_flat.reshape(self.shape) + 1).astype(np.uint8)
            classes[np.append(True, infiltration._p1 <= 0.0)[classes]] = 0  # Ks or f0 of 0: nothing soaks in
            soil, cumulative = infiltration.kind, infiltration.cumulative_m
            params = tuple(np.concatenate(([0.0], p)) for p in (infiltration._p1, infiltration._p2, infiltration._p3))
        else:  # one empty row per grid row: the step takes a row of them, and reads nothing without soil
            rows = self.shape[0]
            soil, classes, cumulative = SOIL_NONE, np.empty((rows, 0), dtype=np.uint8), np.empty((rows, 0))
            params = (np.zeros(1), np.zeros(1), np.zeros(1))
        n_rain = rain.n_columns + 1 if rain is not None else 1
        self._zones_of_row = np.zeros((self.shape[0], n_rain), dtype=bool)  # which rain columns fall on each row
        self._zones_of_row[np.repeat(np.arange(self.shape[0]), self.shape[1]), zone.ravel()] = True
        self._dry = np.zeros(n_rain)
        # runs of one zone and class, for the step's vector solve (Green-Ampt only; none without soil)
        ptr, start, end, first = runs_by_row(zone, classes) if classes.size else (
            np.zeros(self.shape[0] + 1, dtype=np.int64), _NO_INTS[:0], _NO_INTS[:0], _NO_INTS[:0])
        rows = self.shape[0]
        self._base = CellSources(
            soil, zone, self._dry, classes, *params, cumulative, row_rain=np.zeros(rows),
            row_wet=np.zeros(rows, dtype=np.int64), row_ponded=np.zeros(rows, dtype=np.int64), run_ptr=ptr,
            run_start=start, run_end=end, run_zone=zone.ravel()[first], run_class=classes.ravel()[first])
        self._row = -2
        self._now = self._base

    @staticmethod
    def pays(rain: RainSeries | None, infiltration: Infiltration | None) -> bool:
        """Whether the pair is worth applying in the step: it varies from cell to cell, and fits.

        Uniform rain alone stays a single number (the step's fastest path).
        """
        per_cell = infiltration is not None or (rain is not None and rain.cell_column is not None)
        return per_cell and ZonedSources.fits(rain, infiltration)

    @staticmethod
    def fits(rain: RainSeries | None, infiltration: Infiltration | None) -> bool:
        """Whether rain columns and land classes each fit in one byte a cell (with a spare value)."""
        columns_ok = rain is None or rain.n_columns + 1 <= 127
        classes_ok = infiltration is None or infiltration._class_flat.dtype == np.int8
        return columns_ok and classes_ok

    def at(self, t_s: float) -> CellSources:
        """The sources of a step whose mid time is ``t_s``."""
        if self.rain is None:
            return self._base
        i = self.rain.row_at(t_s)
        if i != self._row:
            rain = self.rain._rows_m_per_s[i] if i >= 0 else self._dry
            row_rain = np.where(self._zones_of_row, rain, 0.0).max(axis=1)
            self._row, self._now = i, self._base._replace(rain=rain, row_rain=row_rain)
        return self._now

    def during(self, t0_s: float, t1_s: float) -> CellSources:
        """The sources of a step over [t0_s, t1_s]: those of its mid time, or where the series changes within
        it, the mean (``over``)."""
        if self.rain is not None and self.rain.row_at(t0_s) != self.rain.row_at(np.nextafter(t1_s, t0_s)):
            return self.over(t0_s, t1_s)
        return self.at(0.5 * (t0_s + t1_s))

    def over(self, t0_s: float, t1_s: float) -> CellSources:
        """The sources of a step that applies those of [t0_s, t1_s]: each zone's mean rain rate over it (its
        exact depth, across any change of the series' rows, divided by the time)."""
        if self.rain is None:
            return self._base
        if not t1_s > t0_s:
            raise ValueError(f"the sources' time [{t0_s}, {t1_s}] s is empty")
        rain = np.append(self.rain.depth_mm_between(t0_s, t1_s) / (1000.0 * (t1_s - t0_s)), 0.0)
        row_rain = np.where(self._zones_of_row, rain, 0.0).max(axis=1)
        return self._base._replace(rain=rain, row_rain=row_rain)


# ----------------------------------------------------------------------------- urban drainage

#: Land classes served by the pipe network: urban (20) and transport (10).
DRAINED_CLASSES = ("10", "20")


class DrainageSink:
    """Storm sewers taking surface water up to a design capacity (mm/h of rain on the cell).

    Pipes are sized by the rational method, Q = psi q F: per unit area they carry
    psi q, with q the T-year intensity for the design duration (the inlet time,
    5-15 min, or the time of concentration).  GB 50014-2021 (table 4.1.3) asks
    for return periods of 2-5 years in general urban areas and 3-10 years in
    central districts (more for important areas, underpasses and sunken
    plazas).  Composite runoff coefficients of that standard: dense built-up
    areas 0.60-0.70, medium 0.45-0.60, sparse 0.20-0.45.
    """

    def __init__(self, capacity_mm_per_h: np.ndarray | float):
        cap = np.asarray(capacity_mm_per_h, dtype=np.float64)
        if np.any(~np.isfinite(cap)) or np.any(cap < 0):
            raise InputError(Problem("drainage", "capacity_mm_per_h", "capacities must be finite and >= 0 mm/h"))
        self.capacity_mm_per_h = cap
        self.capacity_m_per_s = mm_per_h_to_m_per_s(cap)
        self.drained_m: np.ndarray | float = 0.0
        self.design: dict = {}

    @classmethod
    def from_design_storm(cls, formula: StormFormula, *, return_period_years: float, duration_min: float,
                          runoff_coefficient: float, class_per_cell: np.ndarray,
                          drained_classes: Iterable[str] = DRAINED_CLASSES) -> DrainageSink:
        """Capacity psi i(P, t) on drained classes (integer or string codes per cell), 0 elsewhere."""
        problems = [Problem("drainage", name, msg) for name, bad, msg in (
            ("return_period_years", not return_period_years > 0, f"{return_period_years!r} must be > 0 years"),
            ("duration_min", not duration_min > 0, f"{duration_min!r} must be > 0 min"),
            ("runoff_coefficient", not 0 < runoff_coefficient <= 1, f"{runoff_coefficient!r} must be in (0, 1]"),
        ) if bad]
        if problems:
            raise InputError(problems)
        cap = runoff_coefficient * formula.intensity_mm_per_h(duration_min, return_period_years)
        cls_arr = np.asarray(class_per_cell)
        if cls_arr.dtype.kind in "iu":
            drained = np.isin(cls_arr, [int(c) for c in drained_classes])
        else:
            drained = np.isin(cls_arr.astype(str), list(drained_classes))
        sink = cls(np.where(drained, cap, 0.0))
        sink.design = {"formula": formula.name, "return_period_years": return_period_years,
                       "duration_min": duration_min, "runoff_coefficient": runoff_coefficient,
                       "capacity_mm_per_h": float(cap)}
        return sink

    def sink_m_per_s(self, depth_m: np.ndarray, dt_s: float, rain_m_per_s: np.ndarray | float = 0.0,
                     *, advance: bool = True) -> np.ndarray:
        """Drained rate (m/s) per cell: the capacity, at most (depth + rain dt)/dt; counted in ``drained_m``."""
        available = np.maximum(np.asarray(depth_m, dtype=np.float64) / dt_s + rain_m_per_s, 0.0)
        rate = np.minimum(self.capacity_m_per_s, available)
        if advance:
            if isinstance(self.drained_m, np.ndarray) and self.drained_m.shape == rate.shape:
                self.drained_m += rate * dt_s
            else:
                self.drained_m = self.drained_m + rate * dt_s
        return rate


@dataclass
class SurfaceSinks:
    """Infiltration first (the soil takes water where it falls), then drainage from what is left."""

    infiltration: Infiltration | None = None
    drainage: DrainageSink | None = None

    def sink_m_per_s(self, depth_m: np.ndarray, dt_s: float, rain_m_per_s: np.ndarray | float = 0.0) -> np.ndarray:
        """Total sink rate (m/s) per cell, at most (depth + rain dt)/dt."""
        total = np.zeros(np.shape(depth_m))
        if self.infiltration is not None:
            total = total + self.infiltration.sink_m_per_s(depth_m, dt_s, rain_m_per_s)
        if self.drainage is not None:
            total = total + self.drainage.sink_m_per_s(depth_m, dt_s, np.asarray(rain_m_per_s) - total)
        return total
