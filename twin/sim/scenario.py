"""Scenario files (``scenarios/*.toml``): one hazard, two or more plans, the clock and the replications.

A scenario is checked as a whole before anything runs, and every problem is
listed with its file, line, field path and what is expected.  The hazard,
plan and inject sections are checked against the model's own declarations
(:mod:`twin.sim.parameters`), so a model's inputs are declared in one place.

Replication ``k`` of every plan runs with seed ``seed + k`` (common random
numbers), so plans differ by the plan, not by luck.

``extends = "other.toml"`` at the top of a file takes every table of that
file and changes only what this one sets (a finer grid for the analyst, say);
the scenario's hash covers both files.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from twin.errors import InputError, Problem
from twin.sim import registry
from twin.sim.model import Inject, TwinModel
from twin.sim.parameters import Kpi, Parameter

TOP_KEYS = ("extends", "scenario", "hazard", "injects", "plans")
SCENARIO_KEYS = ("name", "description", "city", "model", "start", "horizon_s", "step_s", "report_every_s",
                 "replications", "seed", "kpis")
INJECT_KEYS = ("at_s", "kind", "target", "parameters")
PLAN_KEYS = ("name", "description")
_PLAN_ID = re.compile(r"^[A-Za-z0-9_\-]+$")
_EPS = 1e-9


@dataclass(frozen=True)
class Plan:
    """One way of responding to the hazard: the model's plan parameters, defaults filled."""

    key: str
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """A checked scenario file; everything needed to build each run's model."""

    path: Path
    file_hash: str
    name: str
    description: str
    city: Path
    model: str
    start: datetime | None
    horizon_s: float
    step_s: float
    report_every_s: float
    replications: int
    seed: int
    kpis: tuple[str, ...]
    hazard: dict[str, Any]
    injects: tuple[Inject, ...]
    plans: dict[str, Plan]
    base_path: Path | None = None
    """The file this one ``extends``, if any."""

    def seed_for(self, replication: int) -> int:
        """The seed of replication ``replication``, the same for every plan."""
        return self.seed + replication

    def model_class(self) -> type[TwinModel]:
        """The class named by ``model`` (checked when the file was read)."""
        return registry.model_class(self.model)

    def kpi_declarations(self) -> tuple[Kpi, ...]:
        """The model's declarations of the scenario's KPIs, in the scenario's order."""
        by_name = {k.name: k for k in self.model_class().kpi_declarations}
        return tuple(by_name[name] for name in self.kpis)

    def build_model(self, city: Any, plan_key: str, replication: int) -> TwinModel:
        """The model of one run: this hazard, plan ``plan_key``, replication ``replication``."""
        if plan_key not in self.plans:
            raise InputError(Problem(str(self.path), "plans",
                                     f"no plan {plan_key!r}; this scenario's plans: {', '.join(self.plans)}"))
        return self.model_class()(
            city, dict(self.hazard), dict(self.plans[plan_key].parameters), seed=self.seed_for(replication),
            step_s=self.step_s, horizon_s=self.horizon_s, report_every_s=self.report_every_s, injects=self.injects)


# ---------------------------------------------------------------------- values against declarations

def coerce_value(param: Parameter, value: Any) -> Any:
    """``value`` checked against ``param`` (type, range, choices); ValueError says what is expected."""
    expected = f"expected {param.describe()}"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if param.type == "float":
        if not is_number or not math.isfinite(value):
            raise ValueError(f"{value!r} is not a number; {expected}")
        value = float(value)
    elif param.type == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{value!r} is not a whole number; {expected}")
    elif param.type == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false; {expected}")
    elif param.type == "str":
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string; {expected}")
    elif param.type == "choice":
        if value not in param.choices:
            guess = difflib.get_close_matches(str(value), param.choices, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            raise ValueError(f"{value!r} is not a choice{hint}; {expected}")
    elif param.type == "points":
        ok = isinstance(value, list) and all(
            isinstance(p, list) and len(p) == 2 and all(
                isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in p)
            for p in value)
        if not ok:
            raise ValueError(f"{value!r} is not a list of [x, y] points; {expected}")
        value = [[float(x), float(y)] for x, y in value]
    elif param.type == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{value!r} is not a list of strings; {expected}")
        value = list(value)
    if param.type in ("float", "int"):
        if (param.minimum is not None and value < param.minimum) or (param.maximum is not None and value > param.maximum):
            raise ValueError(f"{value!r} is out of range; {expected}")
    return value


def parameter_table(model_cls: type[TwinModel]) -> pd.DataFrame:
    """Every input of a model (hazard, plan, inject parameters) as rows, for forms and reports."""
    rows = []
    sections = [("hazard", model_cls.hazard_parameters), ("plan", model_cls.plan_parameters)]
    sections += [(f"inject {kind.name}", kind.parameters) for kind in model_cls.inject_kinds]
    for section, params in sections:
        for p in params:
            help_text = p.help
            if p.choices:
                help_text = f"{help_text} (one of {', '.join(p.choices)})".strip()
            rows.append({"section": section, "name": p.name, "type": p.type, "unit": p.unit,
                         "min": p.minimum, "max": p.maximum, "default": p.default, "help": help_text})
    return pd.DataFrame(rows, columns=["section", "name", "type", "unit", "min", "max", "default", "help"])


# ---------------------------------------------------------------------- line numbers

_TOML_LINE = re.compile(r"at line (\d+)")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*'))*)\s*=")
_INLINE_KEY = re.compile(r"[{,]\s*((?:[A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*'))\s*=")


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.\s]+", dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


class _LineLocator:
    """The line of each key of a TOML text, found by its full path (``("plans", "B", "servers")``)."""

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        counts: dict[tuple, int] = {}
        current: tuple = ()
        in_string: str | None = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if in_string:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            header = _HEADER.match(line)
            if header:
                name = _split_key(header.group(2))
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    current = (*name, counts[name])
                else:
                    current = name
                for i in range(1, len(current) + 1):
                    self.lines.setdefault(current[:i], lineno)
                continue
            key = _KEY.match(line)
            if not key:
                continue
            path = (*current, *_split_key(key.group(1)))
            self.lines.setdefault(path, lineno)
            rest = line[key.end():]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE_KEY.finditer(rest):
                    self.lines.setdefault((*path, *_split_key(inner.group(1))), lineno)
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote

    def line_of(self, loc: tuple) -> int | None:
        for i in range(len(loc), 0, -1):
            if loc[:i] in self.lines:
                return self.lines[loc[:i]]
        return None


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


# ---------------------------------------------------------------------- reading and checking

class _Check:
    """Collects problems with their lines; raised together at the end."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.locator = _LineLocator(text)
        self.found: list[tuple[int, Problem]] = []

    def add(self, loc: tuple, message: str) -> None:
        line = self.locator.line_of(loc)
        field = _field_path(loc)
        where = f"line {line}: {field}" if line else field
        self.found.append((line or 0, Problem(str(self.path), where, message)))

    def table(self, value: Any, loc: tuple, what: str) -> dict | None:
        if not isinstance(value, dict):
            self.add(loc, f"expected a table ({what}); got {value!r}")
            return None
        return value

    def unknown_keys(self, table: dict, allowed: list[str], loc: tuple, what: str) -> None:
        for key in table:
            if key not in allowed:
                guess = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {guess[0]!r}?)" if guess else ""
                known = ", ".join(allowed) if allowed else "none"
                self.add((*loc, key), f"unknown key{hint}; {what} takes: {known}")

    def parameters(self, declared: tuple[Parameter, ...], given: dict, loc: tuple) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in declared:
            if p.name not in given:
                out[p.name] = p.default
                continue
            try:
                out[p.name] = coerce_value(p, given[p.name])
            except ValueError as exc:
                self.add((*loc, p.name), str(exc))
        return out

    def raise_if_any(self) -> None:
        if self.found:
            raise InputError([p for _, p in sorted(self.found, key=lambda item: item[0])])


def _number(check: _Check, table: dict, key: str, loc: tuple, expected: str, *, positive: bool = False,
            default: float | None = None) -> float | None:
    if key not in table:
        if default is None:
            check.add((*loc, key), f"required field is missing; expected {expected}")
        return default
    value = table[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        check.add((*loc, key), f"{value!r} is not a number; expected {expected}")
        return None
    if (positive and value <= 0) or value < 0:
        check.add((*loc, key), f"{value!r} is out of range; expected {expected}")
        return None
    return float(value)


def _integer(check: _Check, table: dict, key: str, loc: tuple, expected: str, *, minimum: int, default: int) -> int | None:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, int) or isinstance(value, bool):
        check.add((*loc, key), f"{value!r} is not a whole number; expected {expected}")
        return None
    if value < minimum:
        check.add((*loc, key), f"{value!r} is out of range; expected {expected}")
        return None
    return value


def _string(check: _Check, table: dict, key: str, loc: tuple, expected: str, *, default: str | None = None) -> str | None:
    if key not in table:
        if default is None:
            check.add((*loc, key), f"required field is missing; expected {expected}")
        return default
    value = table[key]
    if not isinstance(value, str) or (default is None and not value.strip()):
        check.add((*loc, key), f"{value!r} is not a non-empty string; expected {expected}")
        return None
    return value


def _load_toml(path: Path) -> tuple[bytes, str, dict]:
    """Bytes, text and parsed tables of a scenario file (an InputError naming the line if it is no TOML)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
        return data, text, tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise InputError(Problem(str(path), "", f"not UTF-8 text: {exc}")) from None
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        where = f"line {found.group(1)}" if found else ""
        raise InputError(Problem(str(path), where, f"not valid TOML: {exc}")) from None


def _base_of(path: Path, extends: Any) -> Path:
    """The file an ``extends = "other.toml"`` key names, relative to the extending file."""
    if not isinstance(extends, str) or not extends.strip():
        raise InputError(Problem(str(path), "extends", f"{extends!r} is not a file name; give the scenario this one "
                                 'varies, e.g. extends = "flood_carlisle.toml"'))
    base = (path.parent / extends).resolve()
    if not base.is_file() or base == path.resolve():
        raise InputError(Problem(str(path), "extends", f"{base} is not another scenario file"))
    return base


def _merged(base: dict, over: dict) -> dict:
    """``base`` with the tables of ``over`` merged in key by key (values and lists replaced)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def read_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; an InputError lists every problem found."""
    path = Path(path)
    if not path.is_file():
        raise InputError(Problem(str(path), "", "no scenario file here; a scenario is a .toml file with "
                                 "[scenario] and two or more [plans.<id>] tables (see scenarios/)"))
    data, text, raw = _load_toml(path)
    digest = hashlib.sha256(data)
    base_path = None
    if "extends" in raw:
        base_path = _base_of(path, raw["extends"])
        base_data, _, base_raw = _load_toml(base_path)
        if "extends" in base_raw:
            raise InputError(Problem(str(base_path), "extends", "a scenario that is extended may not extend "
                                     "another; merge the two into one base file"))
        digest.update(base_data)
        raw = _merged(base_raw, {k: v for k, v in raw.items() if k != "extends"})
    file_hash = digest.hexdigest()
    check = _Check(path, text)
    check.unknown_keys(raw, list(TOP_KEYS), (), "a scenario file")

    sc = raw.get("scenario")
    if sc is None:
        check.add(("scenario",), "missing [scenario] table; expected name, city, model, horizon_s and step_s")
        sc = {}
    sc = check.table(sc, ("scenario",), "[scenario]") or {}
    loc = ("scenario",)
    check.unknown_keys(sc, list(SCENARIO_KEYS), loc, "[scenario]")
    name = _string(check, sc, "name", loc, "the scenario's title, a string")
    description = _string(check, sc, "description", loc, "a string", default="")
    model = _string(check, sc, "model", loc, 'a model name or "package.module:ClassName"')
    horizon_s = _number(check, sc, "horizon_s", loc, "simulated time to run, in s, > 0", positive=True)
    step_s = _number(check, sc, "step_s", loc, "clock step in s, > 0 and no longer than horizon_s", positive=True)
    report_every_s = step_s
    if "report_every_s" in sc:
        report_every_s = _number(check, sc, "report_every_s", loc,
                                 "seconds between KPI reports, a whole multiple of step_s (default step_s)", positive=True)
    replications = _integer(check, sc, "replications", loc, "an int >= 1 (runs per plan)", minimum=1, default=1)
    seed = _integer(check, sc, "seed", loc, "an int >= 0 (replication k uses seed + k)", minimum=0, default=0)

    start = sc.get("start")
    if start is not None and not isinstance(start, datetime):
        check.add((*loc, "start"), f"{start!r} is not a date-time; expected a TOML date-time like 2026-01-15T08:00:00")
        start = None

    city = _string(check, sc, "city", loc, "the city folder (holding city.toml), relative to this file")
    city_path = Path()
    if city is not None:
        city_path = (path.parent / city).resolve()
        if not (city_path / "city.toml").is_file():
            what = "no such folder" if not city_path.is_dir() else "the folder has no city.toml"
            check.add((*loc, "city"), f"{city!r} ({city_path}): {what}; expected a city folder holding city.toml")

    if step_s is not None and horizon_s is not None and step_s > horizon_s:
        check.add((*loc, "step_s"), f"step_s {step_s:g} s is longer than horizon_s {horizon_s:g} s; "
                                    "expected a step no longer than the horizon")
    if step_s is not None and report_every_s is not None:
        ratio = report_every_s / step_s
        if round(ratio) < 1 or abs(ratio - round(ratio)) > _EPS * max(1.0, ratio):
            check.add((*loc, "report_every_s"), f"report_every_s {report_every_s:g} s is not a whole multiple of "
                                                f"step_s {step_s:g} s; expected {step_s:g}, {2 * step_s:g}, ...")

    model_cls: type[TwinModel] | None = None
    if model is not None:
        try:
            model_cls = registry.model_class(model)
        except InputError as exc:
            for p in exc.problems:
                check.add((*loc, "model"), p.message)

    hazard_given = check.table(raw.get("hazard", {}), ("hazard",), "the model's hazard parameters") or {}
    hazard: dict[str, Any] = {}
    if model_cls is not None:
        declared = model_cls.hazard_parameters
        check.unknown_keys(hazard_given, [p.name for p in declared], ("hazard",), f"[hazard] of model {model_cls.name!r}")
        hazard = check.parameters(declared, hazard_given, ("hazard",))

    kpis = _kpis(check, sc, model_cls)
    injects = _injects(check, raw.get("injects", []), model_cls, horizon_s, step_s)
    plans = _plans(check, raw.get("plans"), model_cls)

    check.raise_if_any()
    return Scenario(
        path=path.resolve(), file_hash=file_hash, name=name, description=description, city=city_path, model=model,
        start=start, horizon_s=horizon_s, step_s=step_s, report_every_s=report_every_s,
        replications=replications, seed=seed, kpis=kpis, hazard=hazard, injects=injects, plans=plans,
        base_path=base_path)


def _kpis(check: _Check, sc: dict, model_cls: type[TwinModel] | None) -> tuple[str, ...]:
    declared = [k.name for k in model_cls.kpi_declarations] if model_cls is not None else []
    loc = ("scenario", "kpis")
    if "kpis" not in sc:
        return tuple(declared)
    given = sc["kpis"]
    if not isinstance(given, list) or not given or not all(isinstance(k, str) for k in given):
        check.add(loc, f"{given!r} is not a non-empty list of KPI names; expected some of: {', '.join(declared)}")
        return ()
    if model_cls is None:
        return tuple(given)
    reported = "; ".join(f"{k.name} ({k.unit})" for k in model_cls.kpi_declarations)
    seen: set[str] = set()
    for i, name in enumerate(given):
        if name in seen:
            check.add((*loc, i), f"KPI {name!r} is listed twice; expected each KPI once")
        elif name not in declared:
            guess = difflib.get_close_matches(name, declared, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            check.add((*loc, i), f"model {model_cls.name!r} does not report KPI {name!r}{hint}; expected some of: {reported}")
        seen.add(name)
    return tuple(dict.fromkeys(given))


def _injects(check: _Check, given: Any, model_cls: type[TwinModel] | None,
             horizon_s: float | None, step_s: float | None) -> tuple[Inject, ...]:
    if not isinstance(given, list):
        check.add(("injects",), f"expected [[injects]] tables (at_s, kind, target, parameters); got {given!r}")
        return ()
    kinds = {k.name: k for k in model_cls.inject_kinds} if model_cls is not None else {}
    kinds_text = "; ".join(f"{k.name} ({', '.join(p.describe() for p in k.parameters) or 'no parameters'})"
                           for k in kinds.values()) or "none"
    last_start_s = None
    if horizon_s is not None and step_s is not None and step_s <= horizon_s:
        last_start_s = (math.ceil(horizon_s / step_s - _EPS) - 1) * step_s
    out: list[Inject] = []
    for i, entry in enumerate(given):
        loc = ("injects", i)
        entry = check.table(entry, loc, "at_s, kind, target, parameters")
        if entry is None:
            continue
        check.unknown_keys(entry, list(INJECT_KEYS), loc, "an inject")
        at_s = _number(check, entry, "at_s", loc, "simulated time of the inject, in s, >= 0")
        kind = _string(check, entry, "kind", loc, f"one of the model's inject kinds: {kinds_text}")
        target = entry.get("target")
        if target is not None and not isinstance(target, str):
            check.add((*loc, "target"), f"{target!r} is not a string; expected the id of what the inject hits")
            target = None
        params_given = check.table(entry.get("parameters", {}), (*loc, "parameters"), "the inject's parameters") or {}
        if at_s is not None and last_start_s is not None and at_s > last_start_s + _EPS:
            check.add((*loc, "at_s"), f"at_s {at_s:g} s is after the last clock step (it starts at {last_start_s:g} s; "
                                      f"horizon_s {horizon_s:g} s), so the inject would never happen; "
                                      f"expected 0..{last_start_s:g} s")
        if model_cls is None or kind is None:
            continue
        if kind not in kinds:
            guess = difflib.get_close_matches(kind, list(kinds), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            check.add((*loc, "kind"),
                      f"model {model_cls.name!r} has no inject kind {kind!r}{hint}; expected one of: {kinds_text}")
            continue
        declared = kinds[kind].parameters
        check.unknown_keys(params_given, [p.name for p in declared], (*loc, "parameters"), f"inject kind {kind!r}")
        params = check.parameters(declared, params_given, (*loc, "parameters"))
        if at_s is not None:
            out.append(Inject(at_s=at_s, kind=kind, target=target, parameters=params))
    return tuple(sorted(out, key=lambda e: e.at_s))


def _plans(check: _Check, given: Any, model_cls: type[TwinModel] | None) -> dict[str, Plan]:
    loc = ("plans",)
    if given is None:
        check.add(loc, "no plans; expected two or more [plans.<id>] tables (e.g. [plans.A] and [plans.B])")
        return {}
    if not isinstance(given, dict):
        check.add(loc, f"expected [plans.<id>] tables; got {given!r}")
        return {}
    if len(given) < 2:
        check.add(loc, f"{len(given)} plan(s) ({', '.join(given) or 'none'}); expected two or more "
                       "[plans.<id>] tables to compare")
    declared = model_cls.plan_parameters if model_cls is not None else ()
    allowed = [*PLAN_KEYS, *(p.name for p in declared)]
    out: dict[str, Plan] = {}
    for key, entry in given.items():
        ploc = (*loc, key)
        if not _PLAN_ID.match(key):
            check.add(ploc, f"plan id {key!r} is not a short id; expected letters, digits, '_' or '-' (e.g. A, B, more_pumps)")
        entry = check.table(entry, ploc, "name, description and the model's plan parameters")
        if entry is None:
            continue
        name = _string(check, entry, "name", ploc, "the plan's title, a string", default=key)
        description = _string(check, entry, "description", ploc, "a string", default="")
        if model_cls is None:
            continue
        check.unknown_keys(entry, allowed, ploc, f"a plan of model {model_cls.name!r}")
        params = check.parameters(declared, {k: v for k, v in entry.items() if k not in PLAN_KEYS}, ploc)
        out[key] = Plan(key=key, name=name if name is not None else key, description=description or "", parameters=params)
    return out
