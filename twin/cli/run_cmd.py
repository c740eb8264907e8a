"""``twin run``: every plan x replication of a scenario into a results store."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from twin.errors import InputError, Problem

EXIT_INTERRUPTED = 130


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run a scenario's plans and replications into a results folder")
    run.add_argument("scenario", type=Path, help="scenario file (.toml)")
    run.add_argument("--plans", help="comma-separated plan keys (default: every plan)")
    run.add_argument("--replications", type=int, help="replications per plan (default: the scenario's)")
    run.add_argument("--out", type=Path, help="results folder (default: results/<scenario file stem> under the current folder)")
    run.add_argument("--workers", type=int, help="local worker processes (default: one per CPU; 1 runs here)")
    run.add_argument("--scheduler", help="tcp://HOST:PORT of a Dask scheduler to run on instead")
    run.set_defaults(handler=cmd_run)


def _plans(text: str | None) -> list[str] | None:
    if text is None:
        return None
    plans = [p.strip() for p in text.split(",") if p.strip()]
    if not plans:
        raise InputError(Problem("twin run", "--plans", f"expected plan keys like A,B, got {text!r}"))
    return plans


class _PlainDisplay:
    """One line per finished run, for logs and pipes."""

    def start(self, plan: str, k: int) -> None:
        pass

    def progress(self, done: int, total: int, record: Any) -> None:
        if record is None:
            print(f"{total} runs to do", flush=True)
            return
        print(f"[{done}/{total}] {record.plan} rep {record.replication} (seed {record.seed}) "
              f"done in {record.wall_time_s:.2f} s", flush=True)

    def close(self) -> None:
        pass


class _RichDisplay:
    """A bar for the whole batch, followed by the runs in flight."""

    def __init__(self, total: int) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.bar = Progress(TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), TextColumn("{task.fields[current]}"))
        self.task = self.bar.add_task("runs", total=total, current="")
        self.in_flight: list[str] = []
        self.bar.start()

    def _show(self, **update: Any) -> None:
        text = ", ".join(self.in_flight[:4]) + (" ..." if len(self.in_flight) > 4 else "")
        self.bar.update(self.task, current=f"running {text}" if text else "", **update)

    def start(self, plan: str, k: int) -> None:
        self.in_flight.append(f"{plan} rep {k}")
        self._show()

    def progress(self, done: int, total: int, record: Any) -> None:
        label = f"{record.plan} rep {record.replication}" if record is not None else ""
        if label in self.in_flight:
            self.in_flight.remove(label)
        self._show(completed=done, total=total)

    def close(self) -> None:
        self.in_flight.clear()
        self._show()
        self.bar.stop()


def cmd_run(args: argparse.Namespace) -> int:
    from twin.sim.runner import RunCancelled, run_scenario

    if not args.scenario.is_file():
        raise InputError(Problem(str(args.scenario), "", "no such scenario file"))
    if args.replications is not None and args.replications < 1:
        raise InputError(Problem("twin run", "--replications", f"must be >= 1, got {args.replications}"))
    if args.workers is not None and args.workers < 1:
        raise InputError(Problem("twin run", "--workers", f"must be >= 1, got {args.workers}"))
    display: Any = None

    def on_progress(done: int, total: int, record: Any) -> None:
        nonlocal display
        if display is None:
            display = _RichDisplay(total) if sys.stdout.isatty() else _PlainDisplay()
        display.progress(done, total, record)

    def on_start(plan: str, k: int) -> None:
        if display is not None:
            display.start(plan, k)

    t0 = time.perf_counter()
    try:
        store = run_scenario(args.scenario, plans=_plans(args.plans), replications=args.replications,
                             out=args.out, workers=args.workers, scheduler=args.scheduler,
                             on_progress=on_progress, on_start=on_start)
    except RunCancelled as exc:
        if display is not None:
            display.close()
        print(f"twin: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if display is not None:
        display.close()
    counts = store.last_batch
    print(f"{counts.executed} runs complete, {counts.skipped} skipped (already complete) "
          f"in {time.perf_counter() - t0:.1f} s; results in {store.path}")
    return 0
