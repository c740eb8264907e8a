"""Run every plan x replication of a scenario into a results store, resumably.

Replication k of every plan uses the scenario's seed for k (common random
numbers), so plans are compared on the same random draws.  Runs go to a local
process pool, run in this process (``workers=1``), or go to a Dask
distributed cluster (``scheduler="tcp://host:port"``).

Local workers write their run folders themselves (same machine, same disk).
Dask workers only simulate: each returns its KPI table, frames and log, and
this process, the store's only writer, writes them.  So cluster workers need
to see the inputs (code, scenario file, city folder) at the same paths, but
not a shared writable disk; the scenario hash each worker read is checked
against the store's, so a worker with an edited copy cannot mix results in.

A run already complete in the store is skipped, so an interrupted batch is
resumed by running it again.  The default store is ``results/<scenario
stem>/`` under the current directory.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from twin.errors import InputError, Problem
from twin.progress import Cancelled
from twin.sim.model import ModelResult
from twin.sim.store import ResultsStore, RunRecord, rep_name, versions

ProgressCallback = Callable[[int, int, RunRecord | None], None]
StartCallback = Callable[[str, int], None]

_CITIES: dict[str, Any] = {}


class RunCancelled(Cancelled):
    """The batch was interrupted; finished runs are kept in the store and a rerun resumes."""

    def __init__(self, executed: int, kept: int, remaining: int, out: Path) -> None:
        self.executed, self.kept, self.remaining, self.out = executed, kept, remaining, out
        super().__init__(f"interrupted: {executed} run(s) finished by this command, {kept} complete in {out}, "
                         f"{remaining} still to do (run the same command again to resume)")


@dataclass(frozen=True)
class RunOutput:
    """What a worker hands back when the caller writes the store (the Dask path)."""

    plan: str
    replication: int
    result: ModelResult
    meta: dict[str, Any]


@dataclass(frozen=True)
class BatchCounts:
    """What the last :func:`run_scenario` call did: runs executed now and runs skipped as already complete."""

    executed: int
    skipped: int
    total: int


# ---------------------------------------------------------------------------- one run (in a worker)


def _city(folder: Path) -> Any:
    """The city, loaded once per process (model runs only read it)."""
    key = str(Path(folder).resolve())
    if key not in _CITIES:
        from twin.city.city import load_city

        _CITIES[key] = load_city(key)
    return _CITIES[key]


def simulate_one(scenario_path: str, plan: str, replication: int) -> RunOutput:
    """Build and run one plan x replication; nothing is written."""
    from twin.sim.scenario import read_scenario

    scenario = read_scenario(scenario_path)
    city = _city(scenario.city)
    t0 = time.perf_counter()
    model = scenario.build_model(city, plan, replication)
    result = model.run()
    wall_time_s = time.perf_counter() - t0
    meta = {"seed": int(getattr(model, "seed_value", scenario.seed_for(replication))),
            "wall_time_s": wall_time_s, "file_hash": scenario.file_hash, "versions": versions()}
    return RunOutput(plan, replication, result, meta)


def run_one(scenario_path: str, plan: str, replication: int, out: str) -> dict[str, Any]:
    """Simulate one run and write it into the store at ``out``; returns the run.json content."""
    output = simulate_one(scenario_path, plan, replication)
    record = ResultsStore(out).write_run(plan, replication, output.result, output.meta)
    return _record_json(record)


def _record_json(record: RunRecord) -> dict[str, Any]:
    return {key: value for key, value in asdict(record).items() if key != "path"}


def _worker_init(parent_pid: int, threads: int) -> None:
    """Leave Ctrl-C to the parent, which stops the batch cleanly, and exit when the parent is gone.

    A pool worker blocks on its queue for ever once the parent is killed
    (kill -9, a crashed app); a watcher thread ends it instead.  Compiled
    kernels get ``threads`` threads each, so that the workers together do not
    ask for more cores than there are: OpenMP threads spinning for a busy
    core stall a whole parallel kernel.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _share_cores(threads)
    if os.name != "posix":  # os.kill(pid, 0) is no liveness probe on Windows
        return

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="twin-parent-watch", daemon=True).start()


def _share_cores(threads: int) -> None:
    """Numba kernels of this process on ``threads`` threads, waiting passively for work."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import numba
    except ImportError:
        return
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


# ---------------------------------------------------------------------------- the batch


def default_out(scenario_path: str | os.PathLike[str]) -> Path:
    """``results/<scenario stem>`` under the current directory."""
    return Path("results") / Path(scenario_path).stem


def _choose_plans(scenario: Any, plans: Sequence[str] | None) -> list[str]:
    if not plans:
        return list(scenario.plans)
    unknown = [p for p in plans if p not in scenario.plans]
    if unknown:
        raise InputError(Problem(str(scenario.path), "--plans", (
            f"no plan {', '.join(map(repr, unknown))}; the scenario's plans are {', '.join(scenario.plans)}")))
    return list(dict.fromkeys(plans))


def _choose_replications(scenario: Any, replications: int | None) -> int:
    n = scenario.replications if replications is None else replications
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(Problem(str(scenario.path), "--replications", f"must be a whole number >= 1, got {n!r}"))
    return n


def run_scenario(scenario_path: str | os.PathLike[str], *, plans: Sequence[str] | None = None,
                 replications: int | None = None, out: str | os.PathLike[str] | None = None,
                 workers: int | None = None, scheduler: str | None = None,
                 on_progress: ProgressCallback | None = None,
                 on_start: StartCallback | None = None) -> ResultsStore:
    """Run every chosen plan x replication not yet complete in the store; returns the store.

    ``on_progress(done, total, record)`` is called once with ``(0, total,
    None)`` before the first run, then after each finished run (``total``
    counts the runs this call executes, skipped ones aside); ``on_start(plan,
    k)`` precedes each run handed to a local worker (cluster runs have none).  The store's ``last_batch`` holds the counts.
    Ctrl-C (KeyboardInterrupt) stops the batch, keeps the finished runs and
    raises :class:`RunCancelled`.
    """
    from twin.sim.scenario import read_scenario

    scenario_path = str(Path(scenario_path).resolve())
    scenario = read_scenario(scenario_path)
    chosen = _choose_plans(scenario, plans)
    n = _choose_replications(scenario, replications)
    if workers is not None and workers < 1:
        raise InputError(Problem("", "--workers", f"must be >= 1, got {workers}"))
    store = ResultsStore.create(Path(out) if out is not None else default_out(scenario_path), scenario)
    store.remove_leftovers()
    total = len(chosen) * n
    todo = [(p, k) for p in chosen for k in range(n) if not store.is_complete(p, k)]
    skipped = total - len(todo)
    progress = _Progress(len(todo), on_progress)
    try:
        progress.begin()
        if scheduler and todo:
            _run_dask(scheduler, scenario_path, store, todo, progress)
        elif todo:
            size = min(workers or os.cpu_count() or 1, len(todo))
            if size == 1:
                _run_here(scenario_path, store, todo, progress, on_start)
            else:
                _run_pool(scenario_path, store, todo, size, progress, on_start, scenario.model_class().__module__)
    except KeyboardInterrupt:
        kept = sum(store.is_complete(p, k) for p in chosen for k in range(n))
        store.last_batch = BatchCounts(executed=progress.done, skipped=skipped, total=total)
        raise RunCancelled(progress.done, kept, total - kept, store.path) from None
    store.last_batch = BatchCounts(executed=progress.done, skipped=skipped, total=total)
    return store


class _Progress:
    """Counts finished runs and tells the caller."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total, self.callback, self.done = total, callback, 0

    def begin(self) -> None:
        if self.callback is not None:
            self.callback(0, self.total, None)

    def finished(self, record: RunRecord) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total, record)


def _failed(plan: str, replication: int, exc: BaseException) -> BaseException:
    if isinstance(exc, InputError):
        return exc
    return RuntimeError(f"run {plan} {rep_name(replication)} failed: {type(exc).__name__}: {exc}")


def _run_here(scenario_path: str, store: ResultsStore, todo: Iterable[tuple[str, int]], progress: _Progress,
              on_start: StartCallback | None) -> None:
    for plan, k in todo:
        if on_start is not None:
            on_start(plan, k)
        try:
            run_one(scenario_path, plan, k, str(store.path))
        except (KeyboardInterrupt, InputError):
            raise
        except Exception as exc:
            raise _failed(plan, k, exc) from exc
        progress.finished(store.record(plan, k))


def _pool_context(model_module: str) -> multiprocessing.context.BaseContext:
    """A fork server that has imported the heavy modules once, so each worker starts in a blink.

    Plain fork is unsafe when the caller has threads (the desktop app, a Dask
    client); spawn would import numpy, pandas, mesa and geopandas again in
    every worker.  The preload list only counts when the server first starts.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["twin.sim.runner", "twin.sim.scenario", "twin.city.city", model_module])
    return context


def _run_pool(scenario_path: str, store: ResultsStore, todo: list[tuple[str, int]], workers: int,
              progress: _Progress, on_start: StartCallback | None, model_module: str) -> None:
    """At most ``workers`` runs in flight, so 'started' means running and Ctrl-C has little to cancel."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(model_module),
                               initializer=_worker_init,
                               initargs=(os.getpid(), max(1, (os.cpu_count() or 1) // workers)))
    queue = list(reversed(todo))
    running: dict[Future, tuple[str, int]] = {}
    clean = False
    try:
        while queue or running:
            while queue and len(running) < workers:
                plan, k = queue.pop()
                if on_start is not None:
                    on_start(plan, k)
                running[pool.submit(run_one, scenario_path, plan, k, str(store.path))] = (plan, k)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                plan, k = running.pop(future)
                exc = future.exception()
                if exc is not None:
                    raise _failed(plan, k, exc) from exc
                progress.finished(store.record(plan, k))
        clean = True
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:
            _stop_pool(pool, running)


def _stop_pool(pool: ProcessPoolExecutor, running: dict[Future, Any]) -> None:
    """Cancel what has not started and stop the workers now; their half-written folders are never renamed in."""
    for future in running:
        future.cancel()
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def _run_dask(scheduler: str, scenario_path: str, store: ResultsStore, todo: list[tuple[str, int]],
              progress: _Progress) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise InputError(Problem("", "--scheduler",
                                 "Dask distributed is not installed (pip install 'dask[distributed]')")) from exc
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(Problem("", "--scheduler", (
            f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); start one with `dask scheduler` "
            "and workers with `dask worker HOST:PORT`, or run without --scheduler"))) from exc
    futures: list[Any] = []
    try:
        plans = [p for p, _ in todo]
        reps = [k for _, k in todo]
        keys = [f"twin-run-{Path(scenario_path).stem}-{p}-{k}-{os.getpid()}-{time.time_ns()}" for p, k in todo]
        futures = client.map(simulate_one, [scenario_path] * len(todo), plans, reps, key=keys, pure=False)
        where = {future.key: run for future, run in zip(futures, todo)}
        for future in as_completed(futures, loop=client.loop):
            if future.status == "error":
                plan, k = where[future.key]
                exc = future.exception()
                raise _failed(plan, k, exc) from exc
            output: RunOutput = future.result()
            future.release()
            progress.finished(store.write_run(output.plan, output.replication, output.result, output.meta))
    except BaseException:
        if futures:
            client.cancel(futures)
        raise
    finally:
        client.close()
