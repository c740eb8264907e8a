"""Which plan is better, and how sure are we: statistics over replications.

Plans of one scenario run the same replications with common random numbers
(replication k of every plan uses seed k), so replication k of plan A and of
plan B met the same random weather, arrivals and failures.  Comparing them
pair by pair (paired t) removes that shared noise; the unpaired Welch test
is kept beside it for reference, and ``var_ratio`` (variance of the paired
differences over the sum of the two plans' variances) shows how much the
pairing bought: well below 1 means common random numbers did their job.

Every interval is a Student t interval at ``confidence``; a difference is
``significant`` when its two-sided p-value is below ``1 - confidence``, which
is exactly when its interval excludes zero.  Where a number cannot be had
(one replication, no common replications) it is NaN and the row's ``note``
says why; nothing is invented.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from twin.errors import InputError, Problem

VALUE_COLUMNS = ("plan", "replication", "kpi", "value")
SERIES_COLUMNS = ("plan", "replication", "time_s", "kpi", "value")
SUMMARY_COLUMNS = ["plan", "plan_name", "kpi", "n", "mean", "std", "ci_low", "ci_high", "min", "max",
                   "unit", "aggregate", "better", "note"]
PAIRED_COLUMNS = ["kpi", "plan", "other", "n_pairs", "n_dropped", "mean_diff", "std_diff", "ci_low", "ci_high",
                  "t_stat", "p_value", "significant", "better_plan", "welch_p", "var_ratio", "unit", "better",
                  "note"]
BAND_COLUMNS = ["plan", "kpi", "time_s", "n", "mean", "std", "ci_low", "ci_high", "min", "max"]

# Spreads below this share of the data's magnitude are rounding noise, not variation.
_ZERO_SPREAD_REL = 1e-12
_MINUS = "\u2212"


# ---------------------------------------------------------------------------- the numbers


@dataclass(frozen=True)
class PairedTest:
    """Paired t result for one pair of plans on one KPI (differences a − b)."""

    n: int
    mean_diff: float
    std_diff: float
    ci_low: float
    ci_high: float
    t_stat: float
    p_value: float
    welch_p: float
    var_ratio: float
    note: str = ""


def _crit(confidence: float, df: np.ndarray | float) -> np.ndarray | float:
    """Two-sided Student t critical value; NaN where df < 1."""
    df_arr = np.asarray(df, dtype=float)
    out = np.full(df_arr.shape, np.nan)
    ok = df_arr >= 1
    out[ok] = stats.t.ppf(0.5 + confidence / 2.0, df_arr[ok])
    return out if out.shape else float(out)


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sample std, ci_low, ci_high) of one sample; std and CI are NaN below two values."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(_crit(confidence, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def _welch_p(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """Two-sided Welch (unequal variances) p-value; both spreads zero → 0 or 1 by whether means differ."""
    na, nb = a.size, b.size
    if na < 2 or nb < 2:
        return math.nan
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    diff = a.mean() - b.mean()
    tol = _ZERO_SPREAD_REL * scale
    if math.sqrt(va + vb) <= tol:
        return 0.0 if abs(diff) > tol else 1.0
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    return float(2.0 * stats.t.sf(abs(t), df))


def paired_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                confidence: float = 0.95) -> PairedTest:
    """Paired t interval and test of mean(a − b) for matched samples, plus Welch and the variance ratio."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired samples must be 1-D and of equal length")
    n = a.size
    nan = math.nan
    if n == 0:
        return PairedTest(0, nan, nan, nan, nan, nan, nan, nan, nan, "no common replications")
    d = a - b
    mean = float(d.mean())
    if n == 1:
        return PairedTest(1, mean, nan, nan, nan, nan, nan, nan, nan,
                          "one common replication: no interval or test")
    scale = float(max(np.abs(a).max(), np.abs(b).max(), np.finfo(float).tiny))
    tol = _ZERO_SPREAD_REL * scale
    std = float(d.std(ddof=1))
    spread = float(a.var(ddof=1) + b.var(ddof=1))
    var_ratio = std ** 2 / spread if spread > tol ** 2 else nan
    welch_p = _welch_p(a, b, scale)
    if std <= tol:
        differs = abs(mean) > tol
        note = (f"all {n} differences equal (zero variance): "
                f"p set to {'0' if differs else '1'} by convention, interval is the point")
        t_stat = math.copysign(math.inf, mean) if differs else nan
        return PairedTest(n, mean, 0.0, mean, mean, t_stat, 0.0 if differs else 1.0, welch_p,
                          var_ratio, note)
    se = std / math.sqrt(n)
    half = float(_crit(confidence, n - 1)) * se
    t_stat = mean / se
    p = float(2.0 * stats.t.sf(abs(t_stat), n - 1))
    return PairedTest(n, mean, std, mean - half, mean + half, t_stat, p, welch_p, var_ratio)


# ---------------------------------------------------------------------------- the result


@dataclass
class Comparison:
    """Plans compared on their KPIs: tidy tables for the views, the report and the CLI.

    ``summary``: one row per plan and KPI; ``paired``: one row per KPI and
    pair of plans (difference ``plan − other``); ``series``: per plan, KPI and
    time the mean and bands across replications, for plotting.
    """

    summary: pd.DataFrame
    paired: pd.DataFrame
    series: pd.DataFrame
    plans: list[str]
    kpis: list[str]
    plan_names: dict[str, str] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    confidence: float = 0.95
    baseline: str | None = None
    name: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def alpha(self) -> float:
        """Significance level matching the intervals' confidence."""
        return 1.0 - self.confidence

    def plan_label(self, plan: str) -> str:
        """Display name of a plan (its key where it has none)."""
        return self.plan_names.get(plan) or plan

    def to_csv(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write summary.csv, paired.csv and series.csv into ``folder``, each atomically."""
        out = Path(folder)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(Problem(str(out), "", f"cannot create the output folder: {exc}")) from exc
        written = []
        for stem, frame in (("summary", self.summary), ("paired", self.paired), ("series", self.series)):
            path = out / f"{stem}.csv"
            _write_csv_atomic(frame, path)
            written.append(path)
        return written

    def table_text(self, kpis: Sequence[str] | None = None, *, width: int = 120) -> str:
        """A readable terminal table: per KPI each plan's mean and interval, then the differences."""
        chosen = _check_kpis(kpis, self.kpis) if kpis is not None else list(self.kpis)
        try:
            return _rich_table(self, chosen, width)
        except ImportError:
            return _plain_table(self, chosen)


def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            frame.to_csv(fh, index=False)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# ---------------------------------------------------------------------------- checks


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(Problem(what, "columns", f"missing {', '.join(missing)}; "
                                 f"expected {', '.join(columns)}, got {', '.join(map(str, frame.columns))}"))


def _check_kpis(kpis: Sequence[str] | str, known: Sequence[str]) -> list[str]:
    wanted = [k.strip() for k in (kpis.split(",") if isinstance(kpis, str) else kpis) if k.strip()]
    unknown = [k for k in wanted if k not in known]
    if unknown:
        raise InputError(Problem("kpis", ", ".join(unknown),
                                 f"unknown KPI{'s' if len(unknown) > 1 else ''}; known: {', '.join(known)}"))
    if not wanted:
        raise InputError(Problem("kpis", "", f"no KPI named; known: {', '.join(known)}"))
    return list(dict.fromkeys(wanted))


def _resolve_baseline(baseline: str, plans: list[str], names: Mapping[str, str]) -> str:
    if baseline in plans:
        return baseline
    by_name = [p for p in plans if names.get(p) == baseline]
    if len(by_name) == 1:
        return by_name[0]
    listed = ", ".join(f"{p} ({names[p]})" if names.get(p) and names[p] != p else p for p in plans)
    raise InputError(Problem("baseline", baseline, f"no such plan; plans: {listed}"))


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise InputError(Problem("confidence", "", f"must lie strictly between 0 and 1, got {confidence!r}"))
    return c


# ---------------------------------------------------------------------------- building the tables


def _summary(values: pd.DataFrame, plans: list[str], kpis: list[str], meta: Mapping[str, Mapping[str, Any]],
             names: Mapping[str, str], confidence: float) -> pd.DataFrame:
    rows = []
    groups = {key: g["value"].to_numpy(float) for key, g in values.groupby(["plan", "kpi"], sort=False)}
    for kpi in kpis:
        m = meta.get(kpi, {})
        for plan in plans:
            x = groups.get((plan, kpi), np.empty(0))
            mean, std, lo, hi = mean_ci(x, confidence)
            note = ""
            if x.size == 0:
                note = "no values"
            elif x.size == 1:
                note = "one replication: no spread or interval"
            rows.append({"plan": plan, "plan_name": names.get(plan) or plan, "kpi": kpi, "n": int(x.size),
                         "mean": mean, "std": std, "ci_low": lo, "ci_high": hi,
                         "min": float(x.min()) if x.size else math.nan,
                         "max": float(x.max()) if x.size else math.nan,
                         "unit": m.get("unit", ""), "aggregate": m.get("aggregate"), "better": m.get("better"),
                         "note": note})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _verdict(test: PairedTest, plan: str, other: str, better: str | None, alpha: float) -> tuple[bool, str | None]:
    significant = bool(np.isfinite(test.p_value) and test.p_value < alpha)
    if not significant or better not in ("lower", "higher"):
        return significant, None
    plan_wins = test.mean_diff < 0 if better == "lower" else test.mean_diff > 0
    return significant, plan if plan_wins else other


def _paired(values: pd.DataFrame, plans: list[str], kpis: list[str], meta: Mapping[str, Mapping[str, Any]],
            baseline: str | None, confidence: float) -> pd.DataFrame:
    if baseline is not None:
        pairs = [(p, baseline) for p in plans if p != baseline]
    else:
        pairs = [(later, earlier) for earlier, later in combinations(plans, 2)]
    by_key = {key: (g["replication"].to_numpy(), g["value"].to_numpy(float))
              for key, g in values.groupby(["plan", "kpi"], sort=False)}
    empty = (np.empty(0), np.empty(0))
    rows = []
    for kpi in kpis:
        m = meta.get(kpi, {})
        better = m.get("better")
        for plan, other in pairs:
            (rep_a, a), (rep_b, b) = by_key.get((plan, kpi), empty), by_key.get((other, kpi), empty)
            common, ia, ib = np.intersect1d(rep_a, rep_b, assume_unique=True, return_indices=True)
            dropped = len(rep_a) + len(rep_b) - 2 * len(common)
            test = paired_test(a[ia], b[ib], confidence)
            significant, winner = _verdict(test, plan, other, better, 1.0 - confidence)
            notes = [test.note] if test.note else []
            if dropped:
                notes.append(f"{dropped} replication{'s' if dropped > 1 else ''} not in both plans left out")
            if significant and better not in ("lower", "higher"):
                notes.append("KPI has no better direction: no winner named")
            rows.append({"kpi": kpi, "plan": plan, "other": other, "n_pairs": test.n, "n_dropped": dropped,
                         "mean_diff": test.mean_diff, "std_diff": test.std_diff, "ci_low": test.ci_low,
                         "ci_high": test.ci_high, "t_stat": test.t_stat, "p_value": test.p_value,
                         "significant": significant, "better_plan": winner, "welch_p": test.welch_p,
                         "var_ratio": test.var_ratio, "unit": m.get("unit", ""), "better": better,
                         "note": "; ".join(notes)})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def series_bands(series: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean, t interval, min and max across replications per plan, KPI and time (NaN interval where n < 2)."""
    _require_columns(series, SERIES_COLUMNS, "KPI series")
    data = series.loc[np.isfinite(series["value"].to_numpy(float)), ["plan", "kpi", "time_s", "value"]]
    if data.empty:
        return pd.DataFrame(columns=BAND_COLUMNS)
    g = data.groupby(["plan", "kpi", "time_s"], sort=True)["value"]
    out = g.agg(n="count", mean="mean", std="std", min="min", max="max").reset_index()
    n = out["n"].to_numpy(float)
    half = _crit(confidence, n - 1) * out["std"].to_numpy(float) / np.sqrt(n)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out[BAND_COLUMNS]


def _plan_order(values: pd.DataFrame, plan_names: Mapping[str, str] | None) -> list[str]:
    seen = list(pd.unique(values["plan"].astype(str)))
    declared = [p for p in (plan_names or {}) if p in seen]
    return declared + [p for p in seen if p not in declared]


def _seed_note(values: pd.DataFrame) -> str | None:
    if "seed" not in values.columns:
        return None
    per_rep = values.dropna(subset=["seed"]).groupby("replication")["seed"].nunique()
    mixed = per_rep[per_rep > 1]
    if mixed.empty:
        return None
    reps = ", ".join(map(str, mixed.index[:5])) + (" ..." if len(mixed) > 5 else "")
    return (f"replication{'s' if len(mixed) > 1 else ''} {reps} used different seeds in different plans: "
            "pairs there share no random numbers, so the paired test gains little")


def compare_values(values: pd.DataFrame, meta: Mapping[str, Mapping[str, Any]] | None = None, *,
                   baseline: str | None = None, confidence: float = 0.95, kpis: Sequence[str] | str | None = None,
                   series: pd.DataFrame | None = None, plan_names: Mapping[str, str] | None = None,
                   name: str = "") -> Comparison:
    """Compare plans from one number per (plan, replication, KPI).

    ``meta`` gives each KPI's unit, aggregate and better direction (without
    it no winner is named); ``plan_names`` maps plan keys to display names,
    its order first in the plan order (then first appearance); ``baseline`` compares every plan with that one,
    otherwise every pair is compared, later plan minus earlier.  ``series``
    (plan, replication, time_s, kpi, value) adds the bands for plotting.
    """
    confidence = _check_confidence(confidence)
    _require_columns(values, VALUE_COLUMNS, "KPI values")
    meta = {str(k): dict(v) for k, v in (meta or {}).items()}
    names = {str(k): str(v) for k, v in (plan_names or {}).items()}
    notes: list[str] = []

    frame = values.copy()
    frame["plan"] = frame["plan"].astype(str)
    frame["kpi"] = frame["kpi"].astype(str)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    bad = ~np.isfinite(frame["value"].to_numpy())
    if bad.any():
        notes.append(f"{int(bad.sum())} value{'s' if bad.sum() > 1 else ''} not a finite number left out "
                     f"({', '.join(sorted(frame.loc[bad, 'kpi'].unique()))})")
        frame = frame.loc[~bad]
    dup = frame.duplicated(["plan", "replication", "kpi"], keep=False)
    if dup.any():
        first = frame.loc[dup].iloc[0]
        raise InputError(Problem("KPI values", f"plan {first['plan']}, replication {first['replication']}, "
                                 f"KPI {first['kpi']}", f"{int(dup.sum())} rows repeat a (plan, replication, KPI)"))
    if frame.empty:
        raise InputError(Problem("KPI values", "", "no finite KPI values to compare"))

    plans = _plan_order(frame, names)
    present = set(pd.unique(frame["kpi"]))
    known = [k for k in meta if k in present] + [k for k in pd.unique(frame["kpi"]) if k not in meta]
    chosen = _check_kpis(kpis, known) if kpis is not None else known
    frame = frame[frame["kpi"].isin(chosen)]
    base = _resolve_baseline(str(baseline), plans, names) if baseline is not None else None
    if len(plans) < 2:
        notes.append(f"only one plan ({plans[0]}): nothing to compare it with")
    seed_note = _seed_note(frame)
    if seed_note:
        notes.append(seed_note)

    if series is not None:
        _require_columns(series, SERIES_COLUMNS, "KPI series")
        s = series.copy()
        s["plan"] = s["plan"].astype(str)
        s["kpi"] = s["kpi"].astype(str)
        s["value"] = pd.to_numeric(s["value"], errors="coerce").astype(float)
        bands = series_bands(s[s["kpi"].isin(chosen)], confidence)
    else:
        bands = pd.DataFrame(columns=BAND_COLUMNS)

    return Comparison(summary=_summary(frame, plans, chosen, meta, names, confidence),
                      paired=_paired(frame, plans, chosen, meta, base, confidence),
                      series=bands, plans=plans, kpis=chosen, plan_names=names, meta=meta,
                      confidence=confidence, baseline=base, name=name, notes=notes)


def compare_store(store: Any, **kw: Any) -> Comparison:
    """Compare the plans in a results store (``kpi_values``, ``kpi_series``, ``kpi_meta``, ``manifest``)."""
    manifest = getattr(store, "manifest", None) or {}
    plans = manifest.get("plans") or {}
    names = {str(k): str(v.get("name") or k) if isinstance(v, Mapping) else str(k) for k, v in plans.items()}
    series = store.kpi_series() if hasattr(store, "kpi_series") else None
    meta = store.kpi_meta() if hasattr(store, "kpi_meta") else None
    kw.setdefault("plan_names", names)
    kw.setdefault("name", str(manifest.get("name") or ""))
    return compare_values(store.kpi_values(), meta, series=series, **kw)


# ---------------------------------------------------------------------------- text


def _decimals(ref: float) -> int:
    a = abs(ref)
    if a >= 1000:
        return 0
    if a >= 100:
        return 1
    if a >= 1:
        return 2
    if a == 0:
        return 0
    return min(9, 2 - math.floor(math.log10(a)))


def fmt_number(x: float | None, signed: bool = False, ref: float | None = None) -> str:
    """A number with as many decimals as its size (or ``ref``'s, to align an interval) deserves; 'n/a' for NaN."""
    if x is None or np.isnan(x):
        return "n/a"
    if not np.isfinite(x):
        return "+inf" if x > 0 else f"{_MINUS}inf"
    scale = x if ref is None or not np.isfinite(ref) else ref
    if 0 < abs(scale) < 1e-6:
        return f"{x:+.3g}" if signed else f"{x:.3g}"
    places = _decimals(scale)
    text = f"{abs(x):,.{places}f}"
    if float(text.replace(",", "")) == 0:
        return "0"
    sign = _MINUS if x < 0 else ("+" if signed and x > 0 else "")
    return sign + text


def _triple(mean: float, lo: float, hi: float, signed: bool = False) -> str:
    """'mean [lo, hi]' with one number of decimals for all three."""
    ref = max(abs(v) for v in (mean, lo, hi) if np.isfinite(v)) if np.isfinite(mean) else None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return fmt_number(mean, signed, ref)
    return (f"{fmt_number(mean, signed, ref)} [{fmt_number(lo, signed, ref)}, "
            f"{fmt_number(hi, signed, ref)}]")


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "p n/a"
    if p == 0:
        return "p=0"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _cell(row: pd.Series) -> str:
    unit = f" {row['unit']}" if row["unit"] else ""
    if row["n"] == 0:
        return "no values"
    text = _triple(row["mean"], row["ci_low"], row["ci_high"]) + unit
    return text if np.isfinite(row["ci_low"]) else f"{text} (n={row['n']})"


def difference_line(cmp: Comparison, row: pd.Series) -> str:
    """'B − A: +12.3 [5.1, 19.5] min (p=0.002, B better)'."""
    label = f"{cmp.plan_label(row['plan'])} {_MINUS} {cmp.plan_label(row['other'])}"
    unit = f" {row['unit']}" if row["unit"] else ""
    if row["n_pairs"] == 0:
        return f"{label}: no common replications"
    value = _triple(row["mean_diff"], row["ci_low"], row["ci_high"], signed=True)
    if isinstance(row["better_plan"], str) and row["better_plan"]:
        verdict = f"{cmp.plan_label(row['better_plan'])} better"
    elif row["significant"]:
        verdict = "different"
    elif np.isfinite(row["p_value"]):
        verdict = "no significant difference"
    else:
        verdict = "not testable"
    extra = [f"n={row['n_pairs']}"]
    if np.isfinite(row["var_ratio"]):
        extra.append(f"paired variance {row['var_ratio']:.2g}x unpaired")
    if np.isfinite(row["welch_p"]):
        extra.append(f"unpaired {_fmt_p(row['welch_p'])}")
    text = f"{label}: {value}{unit} ({_fmt_p(row['p_value'])}, {verdict}; {', '.join(extra)})"
    return text + (f" - {row['note']}" if row["note"] else "")


def _kpi_label(cmp: Comparison, kpi: str) -> str:
    m = cmp.meta.get(kpi, {})
    bits = [b for b in (m.get("aggregate"), f"{m['better']} is better" if m.get("better") else None) if b]
    return f"{kpi} ({', '.join(bits)})" if bits else kpi


def _plan_counts(cmp: Comparison) -> dict[str, int]:
    if cmp.summary.empty:
        return {p: 0 for p in cmp.plans}
    return cmp.summary.groupby("plan")["n"].max().reindex(cmp.plans, fill_value=0).astype(int).to_dict()


def _title(cmp: Comparison) -> str:
    level = f"{cmp.confidence * 100:g}% intervals"
    return f"{cmp.name}: {level}" if cmp.name else level.capitalize()


def _footer(cmp: Comparison, kpis: list[str]) -> list[str]:
    lines = []
    paired = cmp.paired[cmp.paired["kpi"].isin(kpis)]
    if not paired.empty:
        lines.append(f"Differences (paired by replication, {cmp.confidence * 100:g}% intervals, "
                     f"significant at p<{cmp.alpha:g}):")
        for kpi in kpis:
            rows = paired[paired["kpi"] == kpi]
            if rows.empty:
                continue
            lines.append(f"  {kpi}")
            lines += [f"    {difference_line(cmp, r)}" for _, r in rows.iterrows()]
    shown = cmp.summary[cmp.summary["kpi"].isin(kpis)]
    for note, rows in shown[shown["note"] != ""].groupby("note", sort=False):
        where = ("every plan and KPI" if len(rows) == len(shown) else
                 "; ".join(f"{cmp.plan_label(r.plan)} {r.kpi}" for r in rows.itertuples()))
        lines.append(f"note: {note} ({where})")
    lines += [f"note: {n}" for n in cmp.notes]
    return lines


def _rich_table(cmp: Comparison, kpis: list[str], width: int) -> str:
    from rich.console import Console
    from rich.table import Table

    counts = _plan_counts(cmp)
    table = Table(title=_title(cmp), title_justify="left")
    table.add_column("KPI")
    for plan in cmp.plans:
        table.add_column(f"{cmp.plan_label(plan)} (n={counts[plan]})")
    by = cmp.summary.set_index(["kpi", "plan"])
    for kpi in kpis:
        table.add_row(_kpi_label(cmp, kpi), *[_cell(by.loc[(kpi, p)]) for p in cmp.plans])
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, soft_wrap=True)
    console.print(table)
    for line in _footer(cmp, kpis):
        console.print(line, markup=False, highlight=False)
    return buffer.getvalue().rstrip() + "\n"


def _plain_table(cmp: Comparison, kpis: list[str]) -> str:
    counts = _plan_counts(cmp)
    by = cmp.summary.set_index(["kpi", "plan"])
    header = ["KPI"] + [f"{cmp.plan_label(p)} (n={counts[p]})" for p in cmp.plans]
    body = [[_kpi_label(cmp, k)] + [_cell(by.loc[(k, p)]) for p in cmp.plans] for k in kpis]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = [_title(cmp), "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines + _footer(cmp, kpis)) + "\n"
