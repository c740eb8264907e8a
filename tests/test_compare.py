"""Plan comparison: numbers checked against scipy and by hand, interval coverage, edge cases, CLI."""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from twin.cli import compare_cmd
from twin.errors import InputError, TwinError
from twin.sim.compare import (BAND_COLUMNS, PAIRED_COLUMNS, SUMMARY_COLUMNS, compare_store, compare_values,
                              paired_test)

ROOT = Path(__file__).resolve().parent.parent
MINUS = "\u2212"
META = {
    "wait_min": {"unit": "min", "aggregate": "mean", "better": "lower", "help": "mean wait"},
    "evacuated": {"unit": "persons", "aggregate": "final", "better": "higher", "help": "people out"},
}


def _values(data: dict[tuple[str, str], dict[int, float]]) -> pd.DataFrame:
    rows = [(plan, rep, rep, kpi, v) for (plan, kpi), reps in data.items() for rep, v in reps.items()]
    return pd.DataFrame(rows, columns=["plan", "replication", "seed", "kpi", "value"])


def _crn_values(n: int = 20, seed: int = 1) -> pd.DataFrame:
    """Plans A, B, C sharing each replication's noise (common random numbers)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        shared = rng.normal(100, 15)
        for plan, wait_off, evac_off in (("A", 0, 0), ("B", 8, 5), ("C", -3, 0)):
            rows.append((plan, k, k, "wait_min", shared + wait_off + rng.normal(0, 3)))
            rows.append((plan, k, k, "evacuated", 500 + 0.1 * shared + evac_off + rng.normal(0, 2)))
    return pd.DataFrame(rows, columns=["plan", "replication", "seed", "kpi", "value"])


def _row(frame: pd.DataFrame, **match) -> pd.Series:
    sel = frame
    for key, value in match.items():
        sel = sel[sel[key] == value]
    assert len(sel) == 1, (match, sel)
    return sel.iloc[0]


# ---------------------------------------------------------------------------- numbers


def test_hand_computed_small_example() -> None:
    # A = 10, 12, 14; B = 11, 15, 16: differences B − A = 1, 3, 2 (mean 2, sd 1).
    values = _values({("A", "wait_min"): {0: 10, 1: 12, 2: 14}, ("B", "wait_min"): {0: 11, 1: 15, 2: 16}})
    cmp = compare_values(values, META)
    # Student t with 2 degrees of freedom in closed form: q(p) = (2p − 1) / sqrt(2p(1 − p)).
    t975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
    assert t975 == pytest.approx(4.302653, abs=1e-6)

    a = _row(cmp.summary, plan="A", kpi="wait_min")
    assert (a["n"], a["mean"], a["std"], a["min"], a["max"]) == (3, 12, 2, 10, 14)
    assert a["ci_low"] == pytest.approx(12 - t975 * 2 / math.sqrt(3))
    assert a["ci_high"] == pytest.approx(12 + t975 * 2 / math.sqrt(3))
    assert (a["unit"], a["better"]) == ("min", "lower")

    d = _row(cmp.paired, plan="B", other="A", kpi="wait_min")
    assert (d["n_pairs"], d["n_dropped"], d["mean_diff"], d["std_diff"]) == (3, 0, 2, 1)
    assert d["ci_low"] == pytest.approx(2 - t975 / math.sqrt(3))
    assert d["ci_high"] == pytest.approx(2 + t975 / math.sqrt(3))
    t = 2 * math.sqrt(3)
    assert d["t_stat"] == pytest.approx(t)
    # two-sided p for df = 2: 1 − t / sqrt(t² + 2)
    assert d["p_value"] == pytest.approx(1 - t / math.sqrt(t * t + 2))
    assert d["p_value"] == pytest.approx(0.074180, abs=1e-6)
    assert not d["significant"] and d["better_plan"] is None
    # var(d) = 1, var(A) = 4, var(B) = 7
    assert d["var_ratio"] == pytest.approx(1 / 11)


@pytest.mark.parametrize("n", [2, 3, 7, 30])
def test_matches_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    shared = rng.normal(50, 10, n)
    a = shared + rng.normal(0, 2, n)
    b = shared + 1.5 + rng.normal(0, 3, n)
    values = _values({("A", "wait_min"): dict(enumerate(a)), ("B", "wait_min"): dict(enumerate(b))})
    for confidence in (0.9, 0.95, 0.99):
        cmp = compare_values(values, META, confidence=confidence)
        d = _row(cmp.paired, plan="B", other="A")
        rel = stats.ttest_rel(b, a)
        welch = stats.ttest_ind(b, a, equal_var=False)
        crit = stats.t.ppf(0.5 + confidence / 2, n - 1)
        se = np.std(b - a, ddof=1) / math.sqrt(n)
        assert d["mean_diff"] == pytest.approx(np.mean(b - a))
        assert d["t_stat"] == pytest.approx(rel.statistic)
        assert d["p_value"] == pytest.approx(rel.pvalue, rel=1e-9)
        assert d["welch_p"] == pytest.approx(welch.pvalue, rel=1e-9)
        assert d["ci_low"] == pytest.approx(np.mean(b - a) - crit * se)
        assert d["ci_high"] == pytest.approx(np.mean(b - a) + crit * se)
        ci = rel.confidence_interval(confidence)
        assert (d["ci_low"], d["ci_high"]) == pytest.approx((ci.low, ci.high))
        assert d["significant"] == (rel.pvalue < 1 - confidence)
        assert d["significant"] == (not d["ci_low"] <= 0 <= d["ci_high"])
        assert d["var_ratio"] == pytest.approx(np.var(b - a, ddof=1) / (np.var(a, ddof=1) + np.var(b, ddof=1)))
        s = _row(cmp.summary, plan="A")
        one = stats.ttest_1samp(a, 0).confidence_interval(confidence)
        assert (s["ci_low"], s["ci_high"]) == pytest.approx((one.low, one.high))


def test_paired_ci_coverage() -> None:
    """2,000 synthetic comparisons with a known true difference: the 95% interval covers it about 95% of the time."""
    trials, n, true_diff = 2000, 10, 2.5
    rng = np.random.default_rng(20240601)
    shared = rng.normal(100, 20, (trials, n))
    a = shared + rng.normal(0, 4, (trials, n))
    b = shared + true_diff + rng.normal(0, 4, (trials, n))
    kpi = np.repeat([f"k{i:04d}" for i in range(trials)], n)
    rep = np.tile(np.arange(n), trials)
    values = pd.concat([pd.DataFrame({"plan": p, "replication": rep, "kpi": kpi, "value": x.ravel()})
                        for p, x in (("A", a), ("B", b))])
    cmp = compare_values(values)
    paired = cmp.paired
    assert len(paired) == trials
    covered = ((paired["ci_low"] <= true_diff) & (true_diff <= paired["ci_high"])).mean()
    assert 0.93 <= covered <= 0.97, covered
    # the per-plan interval covers the true mean of B (100 + true_diff) equally often
    s = cmp.summary[cmp.summary["plan"] == "B"]
    covered_mean = ((s["ci_low"] <= 100 + true_diff) & (100 + true_diff <= s["ci_high"])).mean()
    assert 0.93 <= covered_mean <= 0.97, covered_mean
    # common random numbers: the paired variance is a small share of the unpaired one
    assert paired["var_ratio"].median() < 0.1


def test_paired_test_on_arrays() -> None:
    r = paired_test([1.0, 2.0, 4.0], [0.0, 0.0, 1.0])
    assert r.n == 3 and r.mean_diff == pytest.approx(2.0)
    with pytest.raises(ValueError):
        paired_test([1.0, 2.0], [1.0])


# ---------------------------------------------------------------------------- verdicts and pairs


def test_better_plan_follows_direction() -> None:
    cmp = compare_values(_crn_values(), META, plan_names={"A": "Plan A", "B": "Plan B"})
    assert cmp.plans == ["A", "B", "C"]
    pairs = set(zip(cmp.paired["plan"], cmp.paired["other"]))
    assert pairs == {("B", "A"), ("C", "A"), ("C", "B")}
    wait = _row(cmp.paired, kpi="wait_min", plan="B", other="A")
    assert wait["significant"] and wait["mean_diff"] > 0 and wait["better_plan"] == "A"  # lower is better
    evac = _row(cmp.paired, kpi="evacuated", plan="B", other="A")
    assert evac["significant"] and evac["mean_diff"] > 0 and evac["better_plan"] == "B"  # higher is better
    # the shared noise is large: paired is significant where the unpaired test is not
    assert wait["welch_p"] > 0.05 > wait["p_value"]
    assert wait["var_ratio"] < 0.2


def test_no_meta_names_no_winner() -> None:
    cmp = compare_values(_crn_values())
    row = _row(cmp.paired, kpi="wait_min", plan="B", other="A")
    assert row["significant"] and row["better_plan"] is None
    assert "no better direction" in row["note"]
    assert cmp.summary["unit"].eq("").all()


def test_baseline_compares_each_plan_with_it() -> None:
    cmp = compare_values(_crn_values(), META, baseline="B")
    assert cmp.baseline == "B"
    assert set(zip(cmp.paired["plan"], cmp.paired["other"])) == {("A", "B"), ("C", "B")}
    by_name = compare_values(_crn_values(), META, baseline="Plan C", plan_names={"C": "Plan C"})
    assert by_name.baseline == "C"


def test_unknown_baseline_lists_plans() -> None:
    with pytest.raises(InputError) as err:
        compare_values(_crn_values(), META, baseline="Z")
    text = str(err.value)
    assert "Z" in text and all(p in text for p in ("A", "B", "C"))


def test_unknown_kpi_lists_kpis() -> None:
    with pytest.raises(InputError) as err:
        compare_values(_crn_values(), META, kpis=["wait_min", "queue_len"])
    text = str(err.value)
    assert "queue_len" in text and "wait_min" in text and "evacuated" in text
    cmp = compare_values(_crn_values(), META, kpis="evacuated")
    assert cmp.kpis == ["evacuated"] and set(cmp.paired["kpi"]) == {"evacuated"}
    with pytest.raises(InputError, match="known: wait_min, evacuated"):
        compare_values(_crn_values(), META).table_text(["nope"])


def test_bad_inputs_are_input_errors() -> None:
    with pytest.raises(InputError, match="missing value"):
        compare_values(pd.DataFrame({"plan": ["A"], "replication": [0], "kpi": ["x"]}))
    dup = _values({("A", "x"): {0: 1.0}, ("B", "x"): {0: 2.0}})
    with pytest.raises(InputError, match="repeat"):
        compare_values(pd.concat([dup, dup]))
    with pytest.raises(InputError, match="between 0 and 1"):
        compare_values(dup, confidence=1.5)
    with pytest.raises(InputError, match="no finite"):
        compare_values(_values({("A", "x"): {0: float("nan")}}))


# ---------------------------------------------------------------------------- edge cases


def test_single_replication_gives_nan_with_notes() -> None:
    values = _values({("A", "wait_min"): {0: 10.0}, ("B", "wait_min"): {0: 12.0}})
    cmp = compare_values(values, META)
    s = _row(cmp.summary, plan="A")
    assert s["n"] == 1 and s["mean"] == 10 and math.isnan(s["std"]) and math.isnan(s["ci_low"])
    assert "one replication" in s["note"]
    d = _row(cmp.paired, plan="B")
    assert d["n_pairs"] == 1 and d["mean_diff"] == 2
    assert all(math.isnan(d[c]) for c in ("ci_low", "ci_high", "p_value", "welch_p", "var_ratio"))
    assert not d["significant"] and d["better_plan"] is None and "one common replication" in d["note"]
    text = cmp.table_text()
    assert "not testable" in text and "one replication" in text


def test_different_replication_sets_pair_on_common_ones() -> None:
    a = {0: 10.0, 1: 12.0, 2: 14.0, 3: 9.0}
    b = {1: 15.0, 2: 16.0, 0: 11.0, 7: 30.0, 8: 1.0}  # order shuffled, 7 and 8 only in B, 3 only in A
    values = _values({("A", "wait_min"): a, ("B", "wait_min"): b}).sample(frac=1, random_state=3)
    cmp = compare_values(values, META, baseline="A")
    d = _row(cmp.paired, plan="B")
    assert (d["n_pairs"], d["n_dropped"]) == (3, 3)
    assert d["mean_diff"] == pytest.approx(2.0) and d["std_diff"] == pytest.approx(1.0)
    assert "3 replications not in both plans left out" in d["note"]
    # the per-plan summary keeps every replication of each plan
    assert _row(cmp.summary, plan="A")["n"] == 4 and _row(cmp.summary, plan="B")["n"] == 5


def test_plan_without_values_for_a_kpi() -> None:
    values = _values({("A", "x"): {0: 1.0, 1: 2.0}, ("B", "x"): {0: 2.0, 1: 4.0}, ("A", "y"): {0: 1.0, 1: 3.0}})
    cmp = compare_values(values)
    y = _row(cmp.paired, kpi="y")
    assert y["n_pairs"] == 0 and y["n_dropped"] == 2 and "no common replications" in y["note"]
    assert _row(cmp.summary, plan="B", kpi="y")["note"] == "no values"
    assert "no common replications" in cmp.table_text()


def test_zero_variance_differences() -> None:
    base = {0: 10.0, 1: 13.0, 2: 11.0, 3: 17.0}
    shifted = {k: v + 5.0 for k, v in base.items()}
    cmp = compare_values(_values({("A", "wait_min"): base, ("B", "wait_min"): shifted}), META)
    d = _row(cmp.paired, plan="B")
    assert d["mean_diff"] == pytest.approx(5.0) and d["std_diff"] == 0
    assert d["p_value"] == 0 and d["significant"] and d["better_plan"] == "A"
    assert d["ci_low"] == d["ci_high"] == pytest.approx(5.0)
    assert "zero variance" in d["note"] and "p set to 0" in d["note"]

    same = compare_values(_values({("A", "wait_min"): base, ("B", "wait_min"): dict(base)}), META)
    d = _row(same.paired, plan="B")
    assert d["mean_diff"] == 0 and d["p_value"] == 1 and not d["significant"] and d["better_plan"] is None
    assert "p set to 1" in d["note"]

    const = compare_values(_values({("A", "x"): {0: 3.0, 1: 3.0}, ("B", "x"): {0: 4.0, 1: 4.0}}))
    d = _row(const.paired, plan="B")
    assert d["p_value"] == 0 and d["welch_p"] == 0 and math.isnan(d["var_ratio"])


def test_non_finite_values_left_out_with_note() -> None:
    values = _values({("A", "x"): {0: 1.0, 1: float("nan"), 2: 3.0}, ("B", "x"): {0: 2.0, 1: 5.0, 2: 4.0}})
    cmp = compare_values(values)
    assert _row(cmp.summary, plan="A")["n"] == 2
    assert _row(cmp.paired, plan="B")["n_pairs"] == 2
    assert any("not a finite number" in n for n in cmp.notes)


def test_seed_mismatch_is_noted() -> None:
    values = _values({("A", "x"): {0: 1.0, 1: 2.0}, ("B", "x"): {0: 2.0, 1: 4.0}})
    values.loc[(values["plan"] == "B") & (values["replication"] == 1), "seed"] = 99
    cmp = compare_values(values)
    assert any("different seeds" in n for n in cmp.notes)
    assert not any("different seeds" in n for n in compare_values(_crn_values()).notes)


# ---------------------------------------------------------------------------- series bands


def _series(rng: np.random.Generator, plans=("A", "B"), reps=4, times=(0.0, 60.0, 120.0)) -> pd.DataFrame:
    rows = [(p, r, t, kpi, float(rng.normal(t / 10, 1)))
            for p in plans for r in range(reps) for t in times for kpi in ("wait_min", "evacuated")]
    return pd.DataFrame(rows, columns=["plan", "replication", "time_s", "kpi", "value"])


def test_series_bands() -> None:
    rng = np.random.default_rng(5)
    series = _series(rng)
    series = series[~((series["plan"] == "B") & (series["time_s"] == 120.0) & (series["replication"] > 0))]
    cmp = compare_values(_crn_values(4), META, series=series, kpis=["wait_min"])
    bands = cmp.series
    assert list(bands.columns) == BAND_COLUMNS
    assert set(bands["kpi"]) == {"wait_min"}
    row = _row(bands, plan="A", kpi="wait_min", time_s=60.0)
    x = series[(series.plan == "A") & (series.kpi == "wait_min") & (series.time_s == 60.0)]["value"].to_numpy()
    ci = stats.ttest_1samp(x, 0).confidence_interval(0.95)
    assert row["n"] == 4 and row["mean"] == pytest.approx(x.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert (row["min"], row["max"]) == (x.min(), x.max())
    lone = _row(bands, plan="B", kpi="wait_min", time_s=120.0)
    assert lone["n"] == 1 and math.isnan(lone["ci_low"]) and math.isnan(lone["ci_high"])
    assert list(compare_values(_crn_values(4)).series.columns) == BAND_COLUMNS


# ---------------------------------------------------------------------------- outputs


def test_to_csv_writes_three_files(tmp_path: Path) -> None:
    cmp = compare_values(_crn_values(5), META, series=_series(np.random.default_rng(1), plans=("A", "B", "C")))
    out = tmp_path / "out" / "nested"
    written = cmp.to_csv(out)
    assert [p.name for p in written] == ["summary.csv", "paired.csv", "series.csv"]
    assert sorted(p.name for p in out.iterdir()) == ["paired.csv", "series.csv", "summary.csv"]
    summary = pd.read_csv(out / "summary.csv")
    paired = pd.read_csv(out / "paired.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS and list(paired.columns) == PAIRED_COLUMNS
    assert paired["mean_diff"].to_numpy() == pytest.approx(cmp.paired["mean_diff"].to_numpy())
    assert len(pd.read_csv(out / "series.csv")) == len(cmp.series)
    cmp.to_csv(out)  # overwrites in place
    assert sorted(p.name for p in out.iterdir()) == ["paired.csv", "series.csv", "summary.csv"]


def test_table_text() -> None:
    cmp = compare_values(_crn_values(), META, plan_names={"A": "Plan A", "B": "Plan B"}, baseline="A",
                         name="Flood drill")
    text = cmp.table_text()
    assert "Flood drill" in text and "Plan A (n=20)" in text and "C (n=20)" in text
    s = _row(cmp.summary, plan="A", kpi="wait_min")
    assert f"{s['mean']:.1f} [{s['ci_low']:.1f}, {s['ci_high']:.1f}] min" in text
    d = _row(cmp.paired, plan="B", kpi="evacuated")
    expected = f"Plan B {MINUS} Plan A: +{d['mean_diff']:.2f} [+{d['ci_low']:.2f}, +{d['ci_high']:.2f}] persons"
    assert expected in text
    assert "Plan B better" in text and "Plan A better" in text
    assert "p<0.001" in text and "unpaired p=" in text
    only = cmp.table_text(["evacuated"])
    assert "evacuated" in only and "wait_min" not in only


def test_table_text_plain_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import twin.sim.compare as compare

    def no_rich(*args, **kwargs):
        raise ImportError("rich")

    monkeypatch.setattr(compare, "_rich_table", no_rich)
    text = compare_values(_crn_values(), META, plan_names={"A": "A", "B": "Plan B"}).table_text()
    assert f"Plan B {MINUS} A:" in text and "A better" in text and "Plan B (n=20)" in text


# ---------------------------------------------------------------------------- the store and the CLI


class FakeStore:
    """The results store's reading side, enough for compare_store."""

    def __init__(self, values: pd.DataFrame, series: pd.DataFrame | None = None) -> None:
        self._values = values
        self._series = series if series is not None else pd.DataFrame(
            columns=["plan", "replication", "time_s", "kpi", "value"])
        self.manifest = {"name": "Toy drill", "plans": {"C": {"name": "Closure"}, "A": {"name": "As is"},
                                                        "B": {"name": "Buses"}}}

    def kpi_values(self) -> pd.DataFrame:
        return self._values.copy()

    def kpi_series(self) -> pd.DataFrame:
        return self._series.copy()

    def kpi_meta(self) -> dict:
        return {k: dict(v) for k, v in META.items()}


def test_compare_store_uses_manifest_meta_and_series() -> None:
    store = FakeStore(_crn_values(6), _series(np.random.default_rng(2), plans=("A", "B", "C"), reps=6))
    cmp = compare_store(store, baseline="As is")
    assert cmp.name == "Toy drill" and cmp.plans == ["C", "A", "B"] and cmp.baseline == "A"
    assert cmp.plan_names["B"] == "Buses"
    assert set(cmp.series["plan"]) == {"A", "B", "C"}
    assert _row(cmp.summary, plan="A", kpi="evacuated")["unit"] == "persons"
    assert f"Buses {MINUS} As is" in cmp.table_text()


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run ``twin compare`` as main() does: user errors exit 2."""
    parser = argparse.ArgumentParser(prog="twin")
    compare_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", *argv])
    try:
        code = int(args.handler(args) or 0)
    except TwinError as exc:
        print(f"twin: error: {exc}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_with_fake_store(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    results.mkdir()
    store = FakeStore(_crn_values(8))
    monkeypatch.setattr(compare_cmd, "open_store", lambda folder: store)
    code, out, err = _cli(capsys, str(results), "--csv", str(tmp_path / "csv"), "--kpis", "wait_min",
                          "--baseline", "A", "--alpha", "0.1")
    assert code == 0, err
    assert "90% intervals" in out and f"Buses {MINUS} As is" in out and "evacuated" not in out
    assert (tmp_path / "csv" / "paired.csv").exists() and "wrote" in out

    code, out, err = _cli(capsys, str(results), "--baseline", "Z")
    assert code == 2 and "Z" in err and "As is" in err
    code, out, err = _cli(capsys, str(results), "--kpis", "nope")
    assert code == 2 and "nope" in err and "wait_min" in err
    code, out, err = _cli(capsys, str(results), "--alpha", "1.5")
    assert code == 2 and "--alpha" in err


def test_cli_missing_folder(tmp_path: Path, capsys) -> None:
    code, out, err = _cli(capsys, str(tmp_path / "nowhere"))
    assert code == 2 and "no such results folder" in err


def test_cli_end_to_end_on_a_real_store(tmp_path: Path, capsys) -> None:
    pytest.importorskip("twin.sim.store")
    if importlib.util.find_spec("twin.sim.runner") is None:
        pytest.skip("twin.sim.runner not written yet")
    from twin.sim import runner

    scenario = ROOT / "scenarios" / "toy_queue.toml"
    if not hasattr(runner, "run_scenario") or not scenario.exists():
        pytest.skip("run_scenario or scenarios/toy_queue.toml not there yet")
    out = tmp_path / "results"
    runner.run_scenario(str(scenario), replications=5, out=out)
    code, text, err = _cli(capsys, str(out), "--csv", str(tmp_path / "csv"))
    assert code == 0, err
    assert "(n=5)" in text and "Differences" in text
    paired = pd.read_csv(tmp_path / "csv" / "paired.csv")
    assert (paired["n_pairs"] == 5).all()
    from twin.cli import main as main_mod

    if "compare" in main_mod.build_parser().format_help():
        assert main_mod.main(["compare", str(out)]) == 0
