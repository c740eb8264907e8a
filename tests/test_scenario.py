"""Scenario files, the model registry and the test queue model they run."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from datetime import datetime
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import GIS_DATA, ROOT
from tests.toy_model import QueueModel
from twin.errors import InputError, Problem
from twin.sim import registry
from twin.sim.scenario import Plan, Scenario, coerce_value, parameter_table, read_scenario

SAMPLE = ROOT / "scenarios" / "toy_queue.toml"
MONACO = GIS_DATA / "monaco"

BASE = f'''[scenario]
name = "Queue check"
city = "{MONACO}"
model = "tests.toy_model:QueueModel"
horizon_s = 3600
step_s = 10
report_every_s = 60
replications = 4
seed = 7
kpis = ["queue_length", "served"]

[hazard]
arrival_rate_per_s = 0.5

[[injects]]
at_s = 1200
kind = "server_breaks"
target = "server-2"

[[injects]]
at_s = 600
kind = "server_breaks"
parameters = {{ duration_s = 300 }}

[plans.A]
name = "Two desks"
servers = 2

[plans.B]
name = "Three desks"
servers = 3
service_rate_per_s = 0.25
'''


def write(tmp_path: Path, text: str, *edits: tuple[str, str]) -> Path:
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(InputError) as info:
        read_scenario(path)
    return info.value.problems


def the_problem(problems: list[Problem], field: str) -> Problem:
    found = [p for p in problems if p.where.endswith(f": {field}") or p.where == field]
    assert len(found) == 1, (field, [str(p) for p in problems])
    return found[0]


# ---------------------------------------------------------------------- reading

def test_sample_scenario_reads_with_defaults_filled() -> None:
    s = read_scenario(SAMPLE)
    assert s.path == SAMPLE.resolve()
    assert s.file_hash == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert s.name == "Toy queue" and s.description
    assert s.city == MONACO.resolve() and (s.city / "city.toml").is_file()
    assert s.model == "tests.toy_model:QueueModel" and s.model_class() is QueueModel
    assert s.start == datetime(2026, 1, 15, 8, 0)
    assert (s.horizon_s, s.step_s, s.report_every_s) == (3600.0, 10.0, 60.0)
    assert (s.replications, s.seed) == (20, 0)
    assert s.kpis == ("queue_length", "served", "mean_wait_s")  # not given: every KPI of the model
    assert s.hazard == {"arrival_rate_per_s": 0.5}
    assert list(s.plans) == ["A", "B"]
    assert s.plans["A"] == Plan("A", "Two desks", "Today's practice.", {"servers": 2, "service_rate_per_s": 0.3})
    assert s.plans["B"].parameters == {"servers": 3, "service_rate_per_s": 0.3}
    assert len(s.injects) == 1 and s.injects[0].kind == "server_breaks" and s.injects[0].at_s == 1200
    assert [k.name for k in s.kpi_declarations()] == list(s.kpis)


def test_defaults_order_and_subsets(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, ('report_every_s = 60\n', ''), ('replications = 4\n', ''), ('seed = 7\n', ''),
                 ('[hazard]\narrival_rate_per_s = 0.5\n', ''), ('[plans.B]', '[plans.b2]'))
    s = read_scenario(path)
    assert s.report_every_s == s.step_s == 10.0
    assert (s.replications, s.seed, s.start, s.description) == (1, 0, None, "")
    assert s.hazard == {"arrival_rate_per_s": 0.5}  # the declared default
    assert s.kpis == ("queue_length", "served")
    assert list(s.plans) == ["A", "b2"]
    assert s.plans["b2"].parameters == {"servers": 3, "service_rate_per_s": 0.25}
    assert [e.at_s for e in s.injects] == [600.0, 1200.0]  # sorted by time
    assert s.injects[0].parameters == {"duration_s": 300.0} and s.injects[0].target is None
    assert s.injects[1].parameters == {"duration_s": 600.0} and s.injects[1].target == "server-2"


def test_seeds_are_common_to_every_plan() -> None:
    s = read_scenario(SAMPLE)
    for k in range(s.replications):
        assert s.seed_for(k) == s.seed + k
        seeds = {s.build_model(None, plan, k).seed_value for plan in s.plans}
        assert seeds == {s.seed + k}
    shifted = dataclasses.replace(s, seed=100)
    assert shifted.seed_for(3) == 103


def test_build_model_takes_the_plan_and_hazard() -> None:
    s = read_scenario(SAMPLE)
    model = s.build_model(None, "B", 2)
    assert isinstance(model, QueueModel)
    assert len(model.servers) == 3 and model.arrival_rate_per_s == 0.5
    assert (model.step_s, model.horizon_s, model.report_every_s) == (10.0, 3600.0, 60.0)
    with pytest.raises(InputError, match="no plan 'C'; this scenario's plans: A, B"):
        s.build_model(None, "C", 0)


def test_same_seed_same_run_other_seed_other_run() -> None:
    s = read_scenario(SAMPLE)
    first = s.build_model(None, "A", 3).run()
    again = s.build_model(None, "A", 3).run()
    pd.testing.assert_frame_equal(first.kpis, again.kpis, check_exact=True)
    assert first.frames.keys() == again.frames.keys()
    for key in first.frames:
        assert np.array_equal(first.frames[key], again.frames[key])
    assert first.frames["queue_per_server"].dtype == np.int16
    assert first.frames["queue_per_server"].shape == (61, 2)
    assert first.log == again.log
    other = s.build_model(None, "A", 4).run()
    assert not first.kpis.equals(other.kpis)
    assert not np.array_equal(first.frames["queue_per_server"], other.frames["queue_per_server"])


def test_customers_and_servers_are_mesa_agents() -> None:
    s = read_scenario(SAMPLE)
    model = s.build_model(None, "B", 0)
    for _ in range(60):
        model.step()
    in_service = sum(srv.customer is not None for srv in model.servers)
    assert len(model.agents) == 3 + len(model.line) + in_service  # served customers were removed
    assert model.served > 0


def test_mm1_mean_queue_matches_theory() -> None:
    """M/M/1 with rho = 0.5: L_q = rho^2 / (1 - rho) = 0.5.

    Ten independent replications of 20 000 s (about 5 000 customers each,
    the first 2 000 s dropped as warm-up from an empty queue).  The
    tolerance is four standard errors of the mean over replications, and the
    standard error itself must be small (< 0.05, i.e. 10 % of L_q) so the
    check has teeth.  The model is event-driven inside a clock step, so the
    50 s step does not bias the result.
    """
    arrival, service = 0.25, 0.5
    rho = arrival / service
    expected = rho**2 / (1 - rho)
    means = []
    for seed in range(10):
        model = QueueModel(None, {"arrival_rate_per_s": arrival}, {"servers": 1, "service_rate_per_s": service},
                           seed=seed, step_s=50, horizon_s=20_000, report_every_s=50)
        kpis = model.run().kpis
        means.append(kpis.loc[kpis["time_s"] >= 2_000, "queue_length"].mean())
    mean = float(np.mean(means))
    se = float(np.std(means, ddof=1) / math.sqrt(len(means)))
    assert se < 0.05
    assert abs(mean - expected) < 4 * se, (mean, se)


def test_injects_fire_at_their_time_and_change_the_result() -> None:
    s = read_scenario(SAMPLE)
    with_break = s.build_model(None, "A", 0).run()
    assert [e for e in with_break.log if e["message"] == "inject server_breaks"] == [
        {"time_s": 1200.0, "message": "inject server_breaks", "target": "server-1", "duration_s": 600.0}]
    frames = with_break.frames
    down = (frames["time_s"] > 1200) & (frames["time_s"] < 1800)
    assert down.sum() == 9 and (frames["queue_per_server"][down, 0] == 0).all()  # server-1 serves no line
    without = dataclasses.replace(s, injects=()).build_model(None, "A", 0).run()
    assert without.log == []
    before = with_break.kpis["time_s"] <= 1200
    pd.testing.assert_frame_equal(with_break.kpis[before], without.kpis[before])  # same until the inject
    assert with_break.kpis["queue_length"].mean() > without.kpis["queue_length"].mean()
    assert with_break.kpis["mean_wait_s"].iloc[-1] > without.kpis["mean_wait_s"].iloc[-1]


# ---------------------------------------------------------------------- validation: every problem named

CASES = [
    # (id, edits, field path, text on the reported line, what the message must say)
    ("unknown scenario key", [("seed = 7", "sed = 7")], "scenario.sed", "sed = 7",
     ["unknown key (did you mean 'seed'?)", "[scenario] takes: name, "]),
    ("unknown top-level table", [("[hazard]", "[hazards]")], "hazards", "[hazards]",
     ["unknown key (did you mean 'hazard'?)", "scenario, hazard, injects, plans"]),
    ("unknown hazard key", [("arrival_rate_per_s = 0.5", "arival_rate_per_s = 0.5")], "hazard.arival_rate_per_s",
     "arival_rate_per_s", ["did you mean 'arrival_rate_per_s'?", "takes: arrival_rate_per_s"]),
    ("unknown plan key", [("servers = 3", "server = 3")], "plans.B.server", "server = 3",
     ["did you mean 'servers'?", "name, description, servers, service_rate_per_s"]),
    ("unknown inject key", [('target = "server-2"', 'targte = "server-2"')], "injects[0].targte", "targte",
     ["did you mean 'target'?", "at_s, kind, target, parameters"]),
    ("inject parameter not taken", [("duration_s = 300", "duration = 300")], "injects[1].parameters.duration",
     "duration = 300", ["did you mean 'duration_s'?", "inject kind 'server_breaks' takes: duration_s"]),
    ("missing required field", [('model = "tests.toy_model:QueueModel"\n', "")], "scenario.model", "[scenario]",
     ["required field is missing", "a model name or \"package.module:ClassName\""]),
    ("plan value out of range", [("servers = 3", "servers = 30")], "plans.B.servers", "servers = 30",
     ["30 is out of range", "servers: int in desks, 1..20, default 2"]),
    ("hazard value out of range", [("arrival_rate_per_s = 0.5", "arrival_rate_per_s = -1.0")],
     "hazard.arrival_rate_per_s", "arrival_rate_per_s = -1.0", ["out of range", "float in 1/s, 0.0..10.0"]),
    ("plan value of wrong type", [("servers = 3", "servers = 2.5")], "plans.B.servers", "servers = 2.5",
     ["2.5 is not a whole number", "servers: int in desks, 1..20"]),
    ("hazard value of wrong type", [("arrival_rate_per_s = 0.5", 'arrival_rate_per_s = "high"')],
     "hazard.arrival_rate_per_s", "arrival_rate_per_s", ["'high' is not a number", "float in 1/s"]),
    ("scenario value of wrong type", [("horizon_s = 3600", 'horizon_s = "1h"')], "scenario.horizon_s", "horizon_s",
     ["'1h' is not a number", "in s, > 0"]),
    ("inject parameter out of range", [("duration_s = 300", "duration_s = -5")], "injects[1].parameters.duration_s",
     "duration_s = -5", ["-5.0 is out of range", "duration_s: float in s, 0.0..86400.0"]),
    ("unknown model", [('model = "tests.toy_model:QueueModel"', 'model = "queue"')], "scenario.model",
     'model = "queue"', ["unknown model 'queue'", "known models:", "package.module:ClassName"]),
    ("model class not found", [("tests.toy_model:QueueModel", "tests.toy_model:Queue")], "scenario.model",
     "model =", ["module 'tests.toy_model' has no class 'Queue'"]),
    ("city without city.toml", [(f'city = "{MONACO}"', 'city = "."')], "scenario.city", 'city = "."',
     ["the folder has no city.toml", "expected a city folder holding city.toml"]),
    ("city folder missing", [(f'city = "{MONACO}"', 'city = "../nowhere"')], "scenario.city", "city =",
     ["no such folder", "city.toml"]),
    ("fewer than two plans", [('[plans.B]\nname = "Three desks"\nservers = 3\nservice_rate_per_s = 0.25\n', "")],
     "plans", "[plans.A]", ["1 plan(s) (A)", "expected two or more"]),
    ("replications below one", [("replications = 4", "replications = 0")], "scenario.replications",
     "replications = 0", ["0 is out of range", "an int >= 1"]),
    ("step longer than horizon", [("step_s = 10", "step_s = 7200"), ("report_every_s = 60", "report_every_s = 7200")],
     "scenario.step_s", "step_s = 7200", ["step_s 7200 s is longer than horizon_s 3600 s", "no longer than the horizon"]),
    ("report not a multiple of step", [("report_every_s = 60", "report_every_s = 25")], "scenario.report_every_s",
     "report_every_s = 25", ["not a whole multiple of step_s 10 s", "expected 10, 20, ..."]),
    ("inject kind unknown", [('kind = "server_breaks"\nparameters', 'kind = "server_brakes"\nparameters')],
     "injects[1].kind", "server_brakes", ["no inject kind 'server_brakes' (did you mean 'server_breaks'?)",
                                          "expected one of: server_breaks (duration_s: float in s"]),
    ("inject after the horizon", [("at_s = 1200", "at_s = 3595")], "injects[0].at_s", "at_s = 3595",
     ["would never happen", "expected 0..3590 s"]),
    ("unknown KPI", [('kpis = ["queue_length", "served"]', 'kpis = ["queue_length", "servd"]')], "scenario.kpis[1]",
     "kpis =", ["does not report KPI 'servd' (did you mean 'served'?)", "served (persons)"]),
    ("bad plan id", [("[plans.B]", '[plans."plan B"]')], "plans.plan B", "plan B", ["not a short id"]),
    ("start not a date-time", [("horizon_s = 3600", 'start = "tomorrow"\nhorizon_s = 3600')], "scenario.start",
     "start =", ["not a date-time", "2026-01-15T08:00:00"]),
]


@pytest.mark.parametrize(("edits", "field", "needle", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_names_file_line_field_and_expectation(tmp_path: Path, edits, field, needle, expected) -> None:
    path = write(tmp_path, BASE, *edits)
    problem = the_problem(problems_of(path), field)
    assert problem.source == str(path)
    assert problem.where == f"line {line_of(path, needle)}: {field}"
    for text in expected:
        assert text in problem.message, (text, problem.message)
    assert str(path) in str(problem) and f"line {line_of(path, needle)}" in str(problem)


def test_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, ("step_s = 10", "step_s = = 10"))
    [problem] = problems_of(path)
    assert problem.source == str(path)
    assert problem.where == f"line {line_of(path, 'step_s = = 10')}"
    assert "not valid TOML" in problem.message


def test_missing_file_and_missing_tables(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "none.toml")
    assert "no scenario file here" in problem.message
    path = write(tmp_path, 'title = "x"\n')
    problems = problems_of(path)
    assert the_problem(problems, "title").where == "line 1: title"
    assert "missing [scenario] table" in the_problem(problems, "scenario").message
    assert "no plans" in the_problem(problems, "plans").message


def test_many_problems_come_together(tmp_path: Path) -> None:
    path = write(tmp_path, BASE, ("servers = 3", "servers = 30"), ("arrival_rate_per_s = 0.5", "arrival_rate_per_s = -1.0"),
                 ("replications = 4", "replications = 0"), ("at_s = 1200", "at_s = 9000"),
                 ('kpis = ["queue_length", "served"]', 'kpis = ["queue"]'), ("seed = 7", "sede = 7"))
    with pytest.raises(InputError) as info:
        read_scenario(path)
    problems = info.value.problems
    fields = {p.where.split(": ", 1)[1] for p in problems}
    assert fields == {"plans.B.servers", "hazard.arrival_rate_per_s", "scenario.replications", "injects[0].at_s",
                      "scenario.kpis[0]", "scenario.sede"}
    lines = [int(p.where.split()[1].rstrip(":")) for p in problems]
    assert lines == sorted(lines)  # listed in file order
    assert str(info.value).startswith("6 problems:")
    assert all(p.source == str(path) for p in problems)


def test_coerce_value_checks_declarations() -> None:
    from twin.sim.parameters import Parameter

    assert coerce_value(Parameter("a", "float", 1.0, minimum=0), 2) == 2.0
    assert coerce_value(Parameter("p", "points", []), [[1, 2]]) == [[1.0, 2.0]]
    assert coerce_value(Parameter("c", "choice", "x", choices=("x", "y")), "y") == "y"
    with pytest.raises(ValueError, match="did you mean 'yes'"):
        coerce_value(Parameter("c", "choice", "x", choices=("x", "yes")), "ye")
    with pytest.raises(ValueError, match="not true or false"):
        coerce_value(Parameter("b", "bool", False), 1)
    with pytest.raises(ValueError, match="not a list of strings"):
        coerce_value(Parameter("l", "list", []), ["a", 1])
    with pytest.raises(ValueError, match="not a whole number"):
        coerce_value(Parameter("n", "int", 1), True)


def test_parameter_table_lists_every_input() -> None:
    table = parameter_table(QueueModel)
    assert list(table.columns) == ["section", "name", "type", "unit", "min", "max", "default", "help"]
    assert list(table["section"]) == ["hazard", "plan", "plan", "inject server_breaks"]
    servers = table.set_index("name").loc["servers"]
    assert (servers["type"], servers["unit"], servers["min"], servers["max"], servers["default"]) == ("int", "desks", 1, 20, 2)


# ---------------------------------------------------------------------- registry

class OtherQueue(QueueModel):
    name = "other_queue"


def test_registry_resolves_module_class_spec() -> None:
    assert registry.model_class("tests.toy_model:QueueModel") is QueueModel


def test_registry_unknown_name_lists_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})
    registry.register_model(OtherQueue)
    with pytest.raises(InputError) as info:
        registry.model_class("other_queu")
    message = info.value.problems[0].message
    assert "unknown model 'other_queu' (did you mean 'other_queue'?)" in message
    assert "known models: " in message and "other_queue" in message
    with pytest.raises(InputError, match="is not a Twin model"):
        registry.model_class("twin.errors:Problem")
    with pytest.raises(InputError, match="cannot import module 'no_such_pkg.models'"):
        registry.model_class("no_such_pkg.models:Flood")


def test_register_model_and_use_it_in_a_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})
    assert registry.register_model(OtherQueue) is OtherQueue
    assert registry.model_class("other_queue") is OtherQueue
    assert registry.available_models()["other_queue"] == "tests.test_scenario:OtherQueue"
    s = read_scenario(write(tmp_path, BASE, ("tests.toy_model:QueueModel", "other_queue")))
    assert s.model == "other_queue" and s.model_class() is OtherQueue
    assert isinstance(s.build_model(None, "A", 0), OtherQueue)
    with pytest.raises(TypeError):
        registry.register_model(Plan)  # type: ignore[arg-type]


def test_entry_points_register_models(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = EntryPoint(name="queue_ep", value="tests.toy_model:QueueModel", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    assert registry.available_models()["queue_ep"] == "tests.toy_model:QueueModel"
    assert registry.model_class("queue_ep") is QueueModel


def test_scenario_dataclasses_are_frozen() -> None:
    s = read_scenario(SAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.seed = 3  # type: ignore[misc]
    assert isinstance(s, Scenario)
