"""The base every hazard model extends: Mesa 3 for agents, clock and KPIs.

A model is built from (City, hazard parameters, plan parameters, seed).  The
clock runs in simulated seconds; every ``report_every_s`` the model's KPIs are
collected (Mesa's DataCollector) and a frame of per-edge / per-cell / per-agent
arrays is kept for playback.  Injects (a road closes, a pump fails) are applied
when the clock reaches them.  Same seed, same result: all randomness comes
from ``self.random`` / ``self.rng``, which Mesa seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from mesa import Model
from mesa.datacollection import DataCollector

from twin.sim.parameters import InjectKind, Kpi, Parameter


@dataclass(frozen=True)
class Inject:
    """An event at simulated time ``at_s``: ``kind`` is one of the model's inject kinds."""

    at_s: float
    kind: str
    target: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelResult:
    """What one run produced: KPI series, frames for playback and the event log."""

    kpis: pd.DataFrame
    frames: dict[str, np.ndarray]
    log: list[dict[str, Any]]
    steps: int


class TwinModel(Model):
    """Base class of Twin's scenario models (flood, snowstorm, event traffic, ...).

    Subclasses declare ``name``, ``hazard_parameters``, ``plan_parameters``,
    ``kpi_declarations`` and ``inject_kinds``, and implement :meth:`advance`
    (move the hazard field and the agents by ``step_s``) and
    :meth:`compute_kpis`; :meth:`frame` and :meth:`inject` when they have
    frames and injects.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    hazard_parameters: ClassVar[tuple[Parameter, ...]] = ()
    plan_parameters: ClassVar[tuple[Parameter, ...]] = ()
    kpi_declarations: ClassVar[tuple[Kpi, ...]] = ()
    inject_kinds: ClassVar[tuple[InjectKind, ...]] = ()

    def __init__(self, city: Any, hazard: dict[str, Any], plan: dict[str, Any], *, seed: int,
                 step_s: float, horizon_s: float, report_every_s: float | None = None,
                 injects: tuple[Inject, ...] | list[Inject] = ()) -> None:
        super().__init__(seed=seed)
        if step_s <= 0 or horizon_s <= 0:
            raise ValueError("step_s and horizon_s must be positive")
        self.city = city
        self.hazard = dict(hazard)
        self.plan = dict(plan)
        self.seed_value = seed
        self.step_s = float(step_s)
        self.horizon_s = float(horizon_s)
        self.report_every_s = float(report_every_s or step_s)
        self.clock_s = 0.0
        self.log: list[dict[str, Any]] = []
        self._pending = sorted(injects, key=lambda e: e.at_s)
        self._kpi_now: dict[str, float] = {}
        self._frames: list[dict[str, np.ndarray]] = []
        self._frame_times: list[float] = []
        self._next_report_s = 0.0
        names = [k.name for k in self.kpi_declarations]
        self.datacollector = DataCollector(
            model_reporters={"time_s": lambda m: m.clock_s, **{n: (lambda m, n=n: m._kpi_now[n]) for n in names}})

    # ------------------------------------------------------------------ for subclasses

    def advance(self) -> None:
        """Move the hazard and the agents forward by ``step_s`` seconds."""
        raise NotImplementedError

    def compute_kpis(self) -> dict[str, float]:
        """Current value of every declared KPI."""
        raise NotImplementedError

    def frame(self) -> dict[str, np.ndarray]:
        """Arrays to keep for playback at this reporting time (compact dtypes)."""
        return {}

    def inject(self, event: Inject) -> None:
        """Apply an injected event; the base knows none."""
        raise ValueError(f"model {self.name!r} has no inject kind {event.kind!r}")

    # ------------------------------------------------------------------ the loop

    def note(self, message: str, **details: Any) -> None:
        """Add an entry to the run's event log (shown in timelines and reports)."""
        self.log.append({"time_s": self.clock_s, "message": message, **details})

    def _report(self) -> None:
        self._kpi_now = {k: float(v) for k, v in self.compute_kpis().items()}
        missing = {k.name for k in self.kpi_declarations} - set(self._kpi_now)
        if missing:
            raise RuntimeError(f"model {self.name!r} did not report KPIs: {', '.join(sorted(missing))}")
        self.datacollector.collect(self)
        frame = self.frame()
        if frame:
            self._frames.append(frame)
            self._frame_times.append(self.clock_s)
        self._next_report_s += self.report_every_s

    def step(self) -> None:
        """One clock step: due injects, the model's own advance, then KPIs when a report is due."""
        if self.clock_s == 0.0 and not self._frame_times and self._next_report_s == 0.0:
            self._report()
        while self._pending and self._pending[0].at_s <= self.clock_s + 1e-9:
            event = self._pending.pop(0)
            self.inject(event)
            self.note(f"inject {event.kind}", target=event.target, **event.parameters)
        self.advance()
        self.clock_s = round(self.clock_s + self.step_s, 9)
        if self.clock_s + 1e-9 >= self._next_report_s or self.clock_s + 1e-9 >= self.horizon_s:
            self._report()
        if self.clock_s + 1e-9 >= self.horizon_s:
            self.running = False

    def run(self) -> ModelResult:
        """Step to the horizon and hand back KPIs, frames and log."""
        n = math.ceil(self.horizon_s / self.step_s - 1e-9)
        steps = 0
        while self.running and steps < n:
            self.step()
            steps += 1
        kpis = self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        frames: dict[str, np.ndarray] = {}
        if self._frames:
            frames = {key: np.stack([f[key] for f in self._frames]) for key in self._frames[0]}
            frames["time_s"] = np.asarray(self._frame_times, dtype=np.float64)
        return ModelResult(kpis=kpis, frames=frames, log=list(self.log), steps=steps)
