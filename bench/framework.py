"""What the simulation framework costs, measured on the toy queue model.

1. Per model step: a bare Mesa loop of the same model (its own ``advance``,
   injects and KPIs at reporting times kept in a list; no DataCollector, no
   frames, no scenario file, no city, no store) against
   ``TwinModel.run()`` (clock, injects, DataCollector, frames) and against a
   full ``run_one`` (scenario read, model build, run, atomic write of the run
   folder).  The bare loop must reach the same KPIs, so the work compared is
   the same.
2. Batch speed-up of 2 local workers over 1 on the same replications,
   each into a fresh store; the pool is created inside the timing (as in
   ``twin run``), the fork server is already up.  Beside it, the machine's
   own ceiling: two bare loops in two processes against one.

    .venv/bin/python bench/framework.py [--runs 5] [--replications 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCENARIO = ROOT / "scenarios" / "toy_queue.toml"


def _best(fn, repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def bare_loop(scenario, plan: str, replication: int) -> dict[str, float]:
    """The model stepped by hand: what a plain Mesa script needs for the same KPIs."""
    model = scenario.build_model(None, plan, replication)
    pending = list(scenario.injects)
    n = round(scenario.horizon_s / scenario.step_s)
    every = round(scenario.report_every_s / scenario.step_s)
    kpis = [model.compute_kpis()]
    for i in range(n):
        while pending and pending[0].at_s <= model.clock_s + 1e-9:
            model.inject(pending.pop(0))
        model.advance()
        model.clock_s = round(model.clock_s + scenario.step_s, 9)
        if (i + 1) % every == 0 or i == n - 1:
            kpis.append(model.compute_kpis())
    return kpis[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="repeats of each single-run timing (best is kept)")
    parser.add_argument("--replications", type=int, default=40, help="replications per plan in the batch")
    args = parser.parse_args()

    from twin.sim.runner import _city, run_one, run_scenario
    from twin.sim.scenario import read_scenario
    from twin.sim.store import ResultsStore

    scenario = read_scenario(SCENARIO)
    _city(scenario.city)  # the per-process city cache, as a worker has it after its first run
    steps = round(scenario.horizon_s / scenario.step_s)
    plan, k = "A", 3

    with tempfile.TemporaryDirectory() as tmp:
        ResultsStore.create(Path(tmp) / "single", scenario)
        bare_s, bare_kpis = _best(lambda: bare_loop(scenario, plan, k), args.runs)
        model_s, result = _best(lambda: scenario.build_model(None, plan, k).run(), args.runs)
        full_s, record = _best(lambda: run_one(str(SCENARIO), plan, k, str(Path(tmp) / "single")), args.runs)
        final = result.kpis.iloc[-1]
        same = all(float(final[name]) == float(value) for name, value in bare_kpis.items())
        same = same and all(record["kpis"][name] == float(final[name]) for name in ("served", "mean_wait_s"))
        print(f"toy queue, plan {plan}, replication {k}: {steps} steps, "
              f"{len(result.kpis)} reports, best of {args.runs}; same KPIs in all three: {same}")
        print(f"{'':<34} {'run ms':>9} {'us/step':>9} {'x bare':>8}")
        for label, seconds in (("bare Mesa loop", bare_s), ("TwinModel.run()", model_s),
                               ("run_one (scenario, run, store)", full_s)):
            print(f"{label:<34} {seconds * 1e3:9.2f} {seconds / steps * 1e6:9.1f} {seconds / bare_s:8.2f}")
        print(f"framework overhead per step: {(full_s - bare_s) / steps * 1e6:.1f} us "
              f"({(model_s - bare_s) / steps * 1e6:.1f} us in the model loop, "
              f"{(full_s - model_s) / steps * 1e6:.1f} us reading the scenario and writing the run, spread over the steps)")

        t = time.perf_counter()
        run_scenario(SCENARIO, out=Path(tmp) / "warm", replications=1, workers=2)
        warm_s = time.perf_counter() - t
        n_runs = 2 * args.replications
        one_s = _timed_batch(Path(tmp) / "w1", args.replications, 1)
        two_s = _timed_batch(Path(tmp) / "w2", args.replications, 2)
        print(f"\nbatch of {n_runs} runs (2 plans x {args.replications} replications); "
              f"first pool with fork-server start took {warm_s:.2f} s for 2 runs")
        print(f"1 worker (in process): {one_s:.2f} s; 2 workers: {two_s:.2f} s; "
              f"speed-up 2 over 1: {one_s / two_s:.2f}x")
        ceiling = _machine_ceiling(args.replications)
        print(f"this machine's ceiling: 2 plain processes running bare loops at once get {ceiling:.2f}x "
              f"the work of one done (cores {os.cpu_count()})")


def _bare_batch(replications: int) -> float:
    from twin.sim.scenario import read_scenario

    scenario = read_scenario(SCENARIO)
    t = time.perf_counter()
    for k in range(replications):
        bare_loop(scenario, "A", k)
    return time.perf_counter() - t


def _machine_ceiling(replications: int) -> float:
    """Throughput of two busy processes over one, with no framework at all."""
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_bare_batch, [1, 1]))
        alone = pool.submit(_bare_batch, replications).result()
        both = list(pool.map(_bare_batch, [replications, replications]))
    return 2 * alone / max(both)


def _timed_batch(out: Path, replications: int, workers: int) -> float:
    from twin.sim.runner import run_scenario

    t = time.perf_counter()
    run_scenario(SCENARIO, out=out, replications=replications, workers=workers)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
