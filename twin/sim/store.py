"""The results store: one folder per scenario, one sub-folder per run.

Layout::

    <out>/scenario.toml                 copy of the scenario file the runs came from
    <out>/manifest.json                 scenario name and hash, model, plans, KPI declarations, versions
    <out>/runs/<plan>/rep-<k:04d>/
        kpis.parquet                    time_s + one column per KPI
        frames.npz                      playback arrays (compact dtypes kept)
        log.json                        the run's event log
        run.json                        seed, wall time, steps, hash, versions, KPI aggregates; written last

A run is written to a hidden temporary folder and renamed into place, with
``run.json`` written last inside it, so a killed run leaves nothing that looks
complete and a resumed batch redoes it.  A store belongs to exactly one
scenario file (by SHA-256): results of an edited scenario never mix with the
old ones.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from twin.errors import InputError, Problem

if TYPE_CHECKING:
    from twin.sim.model import ModelResult
    from twin.sim.scenario import Scenario

MANIFEST = "manifest.json"
SCENARIO_COPY = "scenario.toml"
RUN_JSON = "run.json"
STATUS_COMPLETE = "complete"
_TMP_MARK = ".tmp-"


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions that can change a run's numbers, recorded with every run."""
    from importlib.metadata import PackageNotFoundError, version

    import twin

    found = {"twin": twin.__version__, "python": platform.python_version()}
    for package in ("mesa", "numpy", "pandas"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


@dataclass(frozen=True)
class RunRecord:
    """One complete run as ``run.json`` describes it."""

    plan: str
    replication: int
    seed: int
    status: str
    wall_time_s: float
    steps: int
    file_hash: str
    kpis: dict[str, float | None]
    versions: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> "RunRecord":
        return cls(plan=data["plan"], replication=int(data["replication"]), seed=int(data["seed"]),
                   status=data["status"], wall_time_s=float(data["wall_time_s"]), steps=int(data["steps"]),
                   file_hash=data["file_hash"], kpis=dict(data["kpis"]), versions=dict(data.get("versions", {})),
                   path=path)


def rep_name(replication: int) -> str:
    return f"rep-{replication:04d}"


def aggregate(values: np.ndarray, how: str) -> float | None:
    """One number from a KPI series, as the KPI declares (None when the series is empty or not finite)."""
    series = np.asarray(values, dtype=np.float64)
    if series.size == 0:
        return None
    ops = {"final": lambda v: v[-1], "max": np.max, "min": np.min, "mean": np.mean, "sum": np.sum}
    if how not in ops:
        raise ValueError(f"unknown KPI aggregate {how!r}")
    value = float(ops[how](series))
    return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(_jsonable(value), indent=1, allow_nan=False), encoding="utf-8")


def _write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
    _write_json(tmp, value)
    os.replace(tmp, path)


def _copy_atomic(source: Path, target: Path) -> None:
    tmp = target.with_name(f"{target.name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _store_error(out: Path, message: str) -> InputError:
    return InputError(Problem(str(out), "results store", message))


class ResultsStore:
    """A scenario's results folder: write runs into it, read KPIs, frames and logs back."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise _store_error(self.path, f"no {MANIFEST}: not a Twin results store (run `twin run` to make one)")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _store_error(self.path, f"{MANIFEST} is unreadable ({exc}); delete the folder and run again") from exc
        self.last_batch: Any = None  # counts of the latest run_scenario call on this object (runner.BatchCounts)

    # ------------------------------------------------------------------ creating

    @classmethod
    def create(cls, out: str | os.PathLike[str], scenario: "Scenario") -> "ResultsStore":
        """Open the store for ``scenario`` at ``out``, making it when new; refuse a store of another scenario file."""
        out = Path(out)
        if (out / MANIFEST).is_file():
            store = cls(out)
            if store.file_hash != scenario.file_hash:
                raise _store_error(out, (
                    f"holds results of a different version of the scenario (file hash "
                    f"{store.file_hash[:12]}..., now {scenario.file_hash[:12]}...); results of different "
                    f"scenario files are never mixed: choose a new --out folder, or delete {out} to start again"))
            return store
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise _store_error(out, "exists and is not a Twin results store; choose a new --out folder or an empty one")
        out.mkdir(parents=True, exist_ok=True)
        (out / "runs").mkdir(exist_ok=True)
        model = scenario.model_class()
        declared = {k.name: k for k in model.kpi_declarations}
        chosen = [name for name in (scenario.kpis or tuple(declared)) if name in declared]
        manifest = {
            "name": scenario.name,
            "file_hash": scenario.file_hash,
            "scenario_file": str(Path(scenario.path).resolve()),
            "model": scenario.model,
            "plans": {key: {"name": plan.name, "description": plan.description}
                      for key, plan in scenario.plans.items()},
            "replications": int(scenario.replications),
            "seed": int(scenario.seed),
            "horizon_s": float(scenario.horizon_s),
            "step_s": float(scenario.step_s),
            "report_every_s": float(scenario.report_every_s) if scenario.report_every_s else None,
            "kpis": {name: {"unit": declared[name].unit, "aggregate": declared[name].aggregate,
                            "better": declared[name].better, "help": declared[name].help} for name in chosen},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(),
        }
        _copy_atomic(Path(scenario.path), out / SCENARIO_COPY)
        if scenario.base_path is not None:  # the copy's ``extends`` then finds it beside it
            _copy_atomic(Path(scenario.base_path), out / Path(scenario.base_path).name)
            manifest["base_file"] = str(Path(scenario.base_path).resolve())
        _write_json_atomic(out / MANIFEST, manifest)
        return cls(out)

    # ------------------------------------------------------------------ paths and state

    @property
    def file_hash(self) -> str:
        return str(self.manifest["file_hash"])

    def run_dir(self, plan: str, replication: int) -> Path:
        return self.path / "runs" / plan / rep_name(replication)

    def is_complete(self, plan: str, replication: int) -> bool:
        """True only for a run folder renamed into place with a readable ``run.json`` marked complete."""
        try:
            data = json.loads((self.run_dir(plan, replication) / RUN_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return data.get("status") == STATUS_COMPLETE and data.get("file_hash") == self.file_hash

    def remove_leftovers(self) -> int:
        """Delete temporary folders of killed runs; call only while no run is writing. Returns how many."""
        removed = 0
        for tmp in (self.path / "runs").glob(f"*/.*{_TMP_MARK}*"):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed += 1
        return removed

    # ------------------------------------------------------------------ writing

    def kpi_meta(self) -> dict[str, dict[str, str]]:
        """KPI name -> unit, aggregate, better, help (as the model declares them)."""
        return dict(self.manifest["kpis"])

    def write_run(self, plan: str, replication: int, result: "ModelResult", meta: dict[str, Any]) -> RunRecord:
        """Write one run atomically; ``meta`` holds seed, wall_time_s and the file_hash the run was built from."""
        file_hash = meta.get("file_hash", self.file_hash)
        if file_hash != self.file_hash:
            raise _store_error(self.path, (
                f"run {plan} {rep_name(replication)} was made from another version of the scenario file "
                f"(hash {str(file_hash)[:12]}..., store {self.file_hash[:12]}...); make sure every worker "
                "sees the same scenario file"))
        kpis = result.kpis.reset_index(drop=True)
        aggregates = {name: aggregate(kpis[name].to_numpy(), info["aggregate"]) if name in kpis else None
                      for name, info in self.kpi_meta().items()}
        record = {
            "plan": plan,
            "replication": int(replication),
            "seed": int(meta["seed"]),
            "status": STATUS_COMPLETE,
            "wall_time_s": float(meta.get("wall_time_s", 0.0)),
            "steps": int(result.steps),
            "file_hash": self.file_hash,
            "versions": meta.get("versions") or versions(),
            "kpis": aggregates,
        }
        final = self.run_dir(plan, replication)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        try:
            kpis.to_parquet(tmp / "kpis.parquet", index=False)
            np.savez_compressed(tmp / "frames.npz", **{k: np.asarray(v) for k, v in result.frames.items()})
            _write_json(tmp / "log.json", result.log)
            _write_json(tmp / RUN_JSON, record)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return RunRecord.from_json(_jsonable(record), final)

    # ------------------------------------------------------------------ reading

    def runs(self) -> list[RunRecord]:
        """Every complete run, by plan (manifest order) then replication."""
        order = {key: i for i, key in enumerate(self.manifest.get("plans", {}))}
        records = []
        for run_json in (self.path / "runs").glob(f"*/rep-*/{RUN_JSON}"):
            try:
                data = json.loads(run_json.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if data.get("status") == STATUS_COMPLETE and data.get("file_hash") == self.file_hash:
                records.append(RunRecord.from_json(data, run_json.parent))
        return sorted(records, key=lambda r: (order.get(r.plan, len(order)), r.plan, r.replication))

    def record(self, plan: str, replication: int) -> RunRecord:
        """The run.json of one complete run."""
        if not self.is_complete(plan, replication):
            raise _store_error(self.path, f"run {plan} {rep_name(replication)} is not complete")
        path = self.run_dir(plan, replication)
        return RunRecord.from_json(json.loads((path / RUN_JSON).read_text(encoding="utf-8")), path)

    def kpis(self, plan: str, replication: int) -> pd.DataFrame:
        """One run's KPI table (time_s + KPI columns)."""
        return pd.read_parquet(self.run_dir(plan, replication) / "kpis.parquet")

    def kpi_series(self) -> pd.DataFrame:
        """Every complete run's KPI series, tidy: plan, replication, time_s, kpi, value."""
        parts = []
        for run in self.runs():
            table = pd.read_parquet(run.path / "kpis.parquet")
            long = table.melt(id_vars="time_s", var_name="kpi", value_name="value")
            long.insert(0, "replication", run.replication)
            long.insert(0, "plan", run.plan)
            parts.append(long)
        if not parts:
            return pd.DataFrame({"plan": pd.Series(dtype=str), "replication": pd.Series(dtype=int),
                                 "time_s": pd.Series(dtype=float), "kpi": pd.Series(dtype=str),
                                 "value": pd.Series(dtype=float)})
        return pd.concat(parts, ignore_index=True)

    def kpi_values(self) -> pd.DataFrame:
        """Each run's aggregated KPIs, tidy: plan, replication, seed, kpi, value."""
        rows = [(r.plan, r.replication, r.seed, name, np.nan if value is None else float(value))
                for r in self.runs() for name, value in r.kpis.items()]
        return pd.DataFrame(rows, columns=["plan", "replication", "seed", "kpi", "value"]).astype(
            {"replication": int, "seed": int, "value": float})

    def frames(self, plan: str, replication: int) -> dict[str, np.ndarray]:
        """One run's playback arrays (time_s plus the model's frame arrays)."""
        with np.load(self.run_dir(plan, replication) / "frames.npz", allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def log(self, plan: str, replication: int) -> list[dict[str, Any]]:
        """One run's event log."""
        return json.loads((self.run_dir(plan, replication) / "log.json").read_text(encoding="utf-8"))
