"""Parameters and KPIs declared once by a model, used everywhere.

A model lists its hazard and plan parameters (name, type, unit, range,
default, help) and its KPIs (unit, how a run's series becomes one number,
which direction is better).  The scenario schema, the command line, the run
panel's form and the report's parameter table are all generated from these
declarations (the QGIS Processing idea).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ParamType = Literal["float", "int", "bool", "str", "choice", "points", "list"]
Aggregate = Literal["final", "max", "min", "mean", "sum"]


@dataclass(frozen=True)
class Parameter:
    """One model input, with its unit and valid range.

    ``points`` values are lists of [x, y] in the city's CRS (pump sites, say);
    ``list`` values are lists of strings (shelter names, road ids).
    """

    name: str
    type: ParamType
    default: Any
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def describe(self) -> str:
        """'rain_mm_per_h: float in mm/h, 0..300, default 30 — help'."""
        bounds = ""
        if self.minimum is not None or self.maximum is not None:
            bounds = f", {'' if self.minimum is None else self.minimum}..{'' if self.maximum is None else self.maximum}"
        if self.choices:
            bounds = f", one of {', '.join(self.choices)}"
        unit = f" in {self.unit}" if self.unit else ""
        return f"{self.name}: {self.type}{unit}{bounds}, default {self.default!r}" + (f" — {self.help}" if self.help else "")


@dataclass(frozen=True)
class Kpi:
    """A key performance indicator a model reports every reporting step.

    ``aggregate`` turns a run's time series into the one number compared
    across plans; ``better`` says which direction is an improvement.
    """

    name: str
    unit: str
    aggregate: Aggregate = "final"
    better: Literal["lower", "higher"] = "lower"
    help: str = ""


@dataclass(frozen=True)
class InjectKind:
    """An event a scenario or a trainer may inject at a given time (a road closes, a pump fails)."""

    name: str
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)
    help: str = ""
