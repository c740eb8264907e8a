"""The batch runner and the results store on the toy queue model.

Same seed, same numbers, wherever a run executes (in process, a local pool,
a Dask cluster); plans share seeds per replication; an interrupted batch
resumes without redoing finished runs; a store never mixes scenario files.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.errors import InputError
from twin.sim.runner import RunCancelled, run_scenario
from twin.sim.scenario import read_scenario
from twin.sim.store import ResultsStore

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "toy_queue.toml"
REPS = 20


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> ResultsStore:
    """Every plan x replication of the toy scenario, run in this process."""
    return run_scenario(SCENARIO, out=tmp_path_factory.mktemp("ref") / "store", workers=1)


def _runs(store: ResultsStore) -> set[tuple[str, int]]:
    return {(r.plan, r.replication) for r in store.runs()}


def assert_same_runs(store: ResultsStore, reference: ResultsStore, runs: set[tuple[str, int]] | None = None) -> None:
    """Bit-identical KPI tables, frames, logs and run records (wall time aside)."""
    runs = _runs(store) if runs is None else runs
    assert runs and runs <= _runs(reference)
    assert _runs(store) == runs
    for plan, k in sorted(runs):
        pd.testing.assert_frame_equal(store.kpis(plan, k), reference.kpis(plan, k), check_exact=True)
        got, want = store.frames(plan, k), reference.frames(plan, k)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].dtype == want[key].dtype
            assert np.array_equal(got[key], want[key])
        assert store.log(plan, k) == reference.log(plan, k)
        a, b = store.record(plan, k), reference.record(plan, k)
        assert (a.seed, a.steps, a.kpis, a.file_hash) == (b.seed, b.steps, b.kpis, b.file_hash)


def test_store_layout_and_tables(reference: ResultsStore) -> None:
    root = reference.path
    assert (root / "scenario.toml").read_bytes() == SCENARIO.read_bytes()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["file_hash"] == read_scenario(SCENARIO).file_hash
    assert manifest["plans"]["B"]["name"] == "Three desks"
    assert manifest["kpis"]["served"] == {"unit": "persons", "aggregate": "final", "better": "higher",
                                          "help": "customers served so far"}
    assert set(manifest["versions"]) >= {"twin", "mesa", "numpy", "pandas", "python"}
    run = root / "runs" / "A" / "rep-0003"
    assert sorted(p.name for p in run.iterdir()) == ["frames.npz", "kpis.parquet", "log.json", "run.json"]
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "complete" and record["seed"] == 3 and record["steps"] == 360
    table = reference.kpis("A", 3)
    assert list(table.columns) == ["time_s", "queue_length", "served", "mean_wait_s"]
    assert record["kpis"]["served"] == table["served"].iloc[-1]
    assert record["kpis"]["queue_length"] == pytest.approx(table["queue_length"].mean(), rel=1e-15)
    frames = reference.frames("A", 3)
    assert frames["queue_per_server"].dtype == np.int16 and len(frames["time_s"]) == len(table)
    assert reference.log("A", 3)[0]["message"] == "inject server_breaks"

    values = reference.kpi_values()
    assert list(values.columns) == ["plan", "replication", "seed", "kpi", "value"]
    assert len(values) == 2 * REPS * 3
    series = reference.kpi_series()
    assert list(series.columns) == ["plan", "replication", "time_s", "kpi", "value"]
    assert len(series) == 2 * REPS * 3 * len(table)


def test_same_seed_same_results_in_process_and_in_a_pool(reference: ResultsStore, tmp_path: Path) -> None:
    again = run_scenario(SCENARIO, out=tmp_path / "again", replications=3, workers=1)
    assert_same_runs(again, reference, {(p, k) for p in "AB" for k in range(3)})
    pooled = run_scenario(SCENARIO, out=tmp_path / "pool", replications=3, workers=2)
    assert_same_runs(pooled, reference, {(p, k) for p in "AB" for k in range(3)})


def test_common_random_numbers_pair_plans(reference: ResultsStore) -> None:
    for record in reference.runs():
        assert record.seed == read_scenario(SCENARIO).seed_for(record.replication)
    values = reference.kpi_values()
    served = values[values.kpi == "served"].pivot(index="replication", columns="plan", values="value")
    seeds = values[values.kpi == "served"].pivot(index="replication", columns="plan", values="seed")
    assert (seeds["A"] == seeds["B"]).all()
    a, b = served["A"].to_numpy(), served["B"].to_numpy()
    paired = np.var(a - b, ddof=1)
    unpaired = np.var(a - np.roll(b, -1), ddof=1)
    assert paired < unpaired


def test_interrupted_batch_resumes_only_missing_runs(reference: ResultsStore, tmp_path: Path) -> None:
    out = tmp_path / "store"

    def stop_after_5(done, total, record):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(RunCancelled) as cancelled:
        run_scenario(SCENARIO, out=out, replications=4, workers=1, on_progress=stop_after_5)
    assert (cancelled.value.executed, cancelled.value.kept, cancelled.value.remaining) == (5, 5, 3)
    store = ResultsStore(out)
    assert len(store.runs()) == 5

    # what a killed run leaves: a temp folder, and a run folder without run.json
    shutil.copytree(store.run_dir("A", 0), out / "runs" / "B" / ".rep-0002.tmp-dead")
    half = store.run_dir("B", 1)
    shutil.copytree(store.run_dir("A", 0), half)
    (half / "run.json").unlink()
    assert not store.is_complete("B", 1)

    executed = []
    store = run_scenario(SCENARIO, out=out, replications=4, workers=1,
                         on_progress=lambda done, total, r: r and executed.append((r.plan, r.replication)))
    assert sorted(executed) == [("B", 1), ("B", 2), ("B", 3)]
    assert (store.last_batch.executed, store.last_batch.skipped) == (3, 5)
    assert not list((out / "runs" / "B").glob(".*"))
    assert_same_runs(store, reference, {(p, k) for p in "AB" for k in range(4)})


def test_ctrl_c_stops_a_pool_and_keeps_finished_runs(reference: ResultsStore, tmp_path: Path) -> None:
    out = tmp_path / "store"

    def stop_after_2(done, total, record):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(RunCancelled) as cancelled:
        run_scenario(SCENARIO, out=out, replications=10, workers=2, on_progress=stop_after_2)
    store = ResultsStore(out)
    kept = len(store.runs())
    assert cancelled.value.executed == 2 and cancelled.value.kept == kept and 2 <= kept < 20
    assert cancelled.value.remaining == 20 - kept
    assert_same_runs(store, reference)
    store = run_scenario(SCENARIO, out=out, replications=10, workers=2)
    assert (store.last_batch.executed, store.last_batch.skipped) == (20 - kept, kept)
    assert_same_runs(store, reference, {(p, k) for p in "AB" for k in range(10)})


def test_dask_cluster_on_loopback_gives_the_same_store(reference: ResultsStore, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        done = []
        store = run_scenario(SCENARIO, out=tmp_path / "dask", plans=["B", "A"], replications=3,
                             scheduler=cluster.scheduler_address,
                             on_progress=lambda d, t, r: done.append(d))
    assert done == [0, 1, 2, 3, 4, 5, 6]
    assert_same_runs(store, reference, {(p, k) for p in "AB" for k in range(3)})


def test_store_refuses_results_of_another_scenario_file(tmp_path: Path) -> None:
    out = tmp_path / "store"
    run_scenario(SCENARIO, out=out, plans=["A"], replications=1, workers=1)
    edited = tmp_path / "toy_queue.toml"
    text = SCENARIO.read_text().replace('city = "../gis_data/monaco"', f'city = "{ROOT / "gis_data" / "monaco"}"')
    edited.write_text(text.replace("arrival_rate_per_s = 0.5", "arrival_rate_per_s = 0.6"))
    with pytest.raises(InputError, match="different version of the scenario.*new --out folder.*delete"):
        ResultsStore.create(out, read_scenario(edited))
    with pytest.raises(InputError, match="different version of the scenario"):
        run_scenario(edited, out=out, workers=1)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a Twin results store"):
        run_scenario(SCENARIO, out=tmp_path / "other", workers=1)


def test_bad_requests_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no plan 'C'"):
        run_scenario(SCENARIO, out=tmp_path / "s", plans=["A", "C"])
    with pytest.raises(InputError, match="--replications"):
        run_scenario(SCENARIO, out=tmp_path / "s", replications=0)
    with pytest.raises(InputError, match="no scenario file"):
        run_scenario(tmp_path / "missing.toml", out=tmp_path / "s")


def test_cli_reports_runs_and_skips(tmp_path: Path, capsys) -> None:
    from twin.cli import run_cmd

    parser = argparse.ArgumentParser(prog="twin")
    run_cmd.register(parser.add_subparsers(dest="command"))
    argv = ["run", str(SCENARIO), "--plans", "A,B", "--replications", "2", "--out", str(tmp_path / "s"),
            "--workers", "1"]
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "4 runs to do" in out and "[4/4] B rep 1 (seed 1)" in out and "4 runs complete, 0 skipped (already complete)" in out
    args = parser.parse_args(argv)
    assert args.handler(args) == 0
    assert "0 runs complete, 4 skipped (already complete)" in capsys.readouterr().out
    with pytest.raises(InputError, match="--plans"):
        args = parser.parse_args([*argv[:2], "--plans", ","])
        args.handler(args)
