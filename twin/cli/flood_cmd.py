"""``twin flood simulate``: a 2D flood run from a DEM, rain, inflows and walls into a results folder."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

#: ``models.flood.simulate``'s defaults and the names of ``sources.STORM_FORMULAS``, repeated so that the help
#: does not import the solver (``tests/test_flood_simulate.py`` checks that they agree).
DEFAULT_SOURCE_STEP_S = 2.0
DEFAULT_STORM_DURATION_S = 7200.0
DEFAULT_PEAK_RATIO = 0.4
DEFAULT_STORM_STEP_S = 60.0
DEFAULT_DRAIN_DURATION_MIN = 10.0
DEFAULT_RUNOFF_COEFFICIENT = 0.6
STORM_FORMULA_NAMES = ("Jinan", "Beijing", "Shanghai")

_SIMULATE_FLAGS = (
    ("dem", "--dem"), ("duration", "--duration"), ("rain", "--rain"), ("rain_zones", "--rain-zones"),
    ("storm_formula", "--storm-formula"), ("design_storm", "--design-storm"), ("storm_duration", "--storm-duration"),
    ("peak_ratio", "--peak-ratio"), ("storm_step", "--storm-step"), ("drainage", "--drainage"),
    ("drain_duration", "--drain-duration"), ("runoff_coefficient", "--runoff-coefficient"), ("inflows", "--inflows"), ("manning", "--manning"), ("landcover", "--landcover"),
    ("landcover_table", "--landcover-table"), ("infiltration", "--infiltration"), ("buildings", "--buildings"),
    ("probes", "--probes"), ("initial_level", "--initial-level"), ("initial_depth", "--initial-depth"),
    ("boundary", "--boundary"), ("coarsen", "--coarsen"), ("frame_every", "--frame-every"),
    ("report_every", "--report-every"), ("source_step", "--source-step"), ("out", "--out"),
)

_DETAILS = {"design_storm": ("storm_duration", "peak_ratio", "storm_step"),
            "drainage": ("drain_duration", "runoff_coefficient")}


def register(commands: argparse._SubParsersAction) -> None:
    flood = commands.add_parser("flood", help="run the 2D flood model")
    sub = flood.add_subparsers(dest="flood_command", metavar="ACTION")
    sim = sub.add_parser(
        "simulate", help="flood a DEM with rain and inflows; write depth, speed and arrival maps",
        description="Local inertial 2D flood run. Writes max_depth.tif, max_speed.tif, arrival_time.tif, "
                    "depth_<t>.tif frames, probes.csv and mass_balance.json into --out (a new or empty "
                    "folder), all on the DEM's CRS.")
    sim.add_argument("--dem", type=Path, required=True, help="terrain GeoTIFF in a metric CRS (m)")
    sim.add_argument("--duration", type=float, required=True, metavar="SECONDS", help="simulated time (s)")
    sim.add_argument("--rain", type=Path, metavar="CSV",
                     help="time_s plus one intensity column, or one column per zone of --rain-zones (mm/h, "
                          "each row holds until the next)")
    sim.add_argument("--rain-zones", type=Path, metavar="RASTER", help="zone id per cell for a zoned --rain file")
    sim.add_argument("--storm-formula", metavar="FORMULA",
                     help="the storm intensity formula q = A (1 + C lg P) / (t + b)^n of the design storm and the "
                          f"drains: {', '.join(STORM_FORMULA_NAMES)}, or A,C,b,n (q in L/(s ha), t in min)")
    sim.add_argument("--design-storm", type=float, metavar="YEARS",
                     help="rain a Chicago design storm (Keifer and Chu) of this return period, uniform, instead of "
                          "--rain")
    sim.add_argument("--storm-duration", type=float, metavar="SECONDS", default=DEFAULT_STORM_DURATION_S,
                     help=f"the design storm's length (default {DEFAULT_STORM_DURATION_S:g} s)")
    sim.add_argument("--peak-ratio", type=float, metavar="R", default=DEFAULT_PEAK_RATIO,
                     help=f"where its peak falls, as a share of its length (default {DEFAULT_PEAK_RATIO:g})")
    sim.add_argument("--storm-step", type=float, metavar="SECONDS", default=DEFAULT_STORM_STEP_S,
                     help=f"its intensity is the mean over each such step (default {DEFAULT_STORM_STEP_S:g} s)")
    sim.add_argument("--drainage", type=float, metavar="YEARS",
                     help="storm drains sized by the rational method for this return period take water from "
                          "built-up and transport land (every cell without --landcover classes)")
    sim.add_argument("--drain-duration", type=float, metavar="MINUTES", default=DEFAULT_DRAIN_DURATION_MIN,
                     help=f"the rain duration the drains are sized for (default {DEFAULT_DRAIN_DURATION_MIN:g} min)")
    sim.add_argument("--runoff-coefficient", type=float, metavar="PSI", default=DEFAULT_RUNOFF_COEFFICIENT,
                     help=f"of the drained land (default {DEFAULT_RUNOFF_COEFFICIENT:g})")
    sim.add_argument("--inflows", type=Path, metavar="GEOJSON",
                     help="points or lines with properties kind (discharge m3/s | level m) and hydrograph "
                          "(CSV time_s,value, relative to the GeoJSON)")
    sim.add_argument("--manning", type=float, metavar="N",
                     help="Manning's n for every cell (s/m^(1/3); default 0.03)")
    sim.add_argument("--landcover", type=Path, metavar="RASTER", help="land-cover codes per cell (with --landcover-table)")
    sim.add_argument("--landcover-table", type=Path, metavar="CSV",
                     help="value,manning_n[,land_class] for each land-cover value")
    sim.add_argument("--infiltration", choices=("green_ampt", "horton", "none"), default="none",
                     help="infiltration model by land_class (default none)")
    sim.add_argument("--buildings", type=Path, metavar="VECTOR", help="building footprints, made walls")
    sim.add_argument("--probes", type=Path, metavar="CSV", help="name,x,y points (the DEM's CRS) to record")
    sim.add_argument("--initial-level", type=float, metavar="M", help="water level at the start (m, DEM datum)")
    sim.add_argument("--initial-depth", type=Path, metavar="RASTER", help="water depth at the start (m)")
    sim.add_argument("--boundary", choices=("closed", "open"), default="closed",
                     help="domain edges: closed walls or free outflow (default closed)")
    sim.add_argument("--coarsen", type=int, default=1, metavar="K", help="merge K x K DEM cells (default 1)")
    sim.add_argument("--frame-every", type=float, metavar="SECONDS", help="write depth_<t>.tif this often")
    sim.add_argument("--report-every", type=float, metavar="SECONDS",
                     help="probe rows and balance series this often (default: --frame-every, else 60 s)")
    sim.add_argument("--source-step", type=float, metavar="SECONDS", default=DEFAULT_SOURCE_STEP_S,
                     help="apply rain and infiltration this often, over the time since they were last applied "
                          f"(default {DEFAULT_SOURCE_STEP_S:g} s; 0: at every hydraulic step)")
    sim.add_argument("--out", type=Path, required=True, metavar="DIR", help="results folder (new or empty)")
    sim.set_defaults(handler=cmd_simulate)
    flood.set_defaults(handler=lambda args: flood.print_help() or 2)


def command_line(args: argparse.Namespace) -> str:
    """The command as parsed, every option spelled out, so that the run can be repeated."""
    words = ["twin", "flood", "simulate"]
    for attr, flag in _SIMULATE_FLAGS:
        value = getattr(args, attr, None)
        if any(attr in details and getattr(args, reader, None) is None for reader, details in _DETAILS.items()):
            continue  # defaults that only a design storm or drains read
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


def cmd_simulate(args: argparse.Namespace) -> int:
    from models.flood.simulate import FloodOptions, simulate
    from twin.progress import Feedback

    options = FloodOptions(
        dem=args.dem, duration_s=args.duration, out=args.out, rain=args.rain, rain_zones=args.rain_zones,
        storm_formula=args.storm_formula, design_storm_years=args.design_storm,
        storm_duration_s=args.storm_duration, peak_ratio=args.peak_ratio, storm_step_s=args.storm_step,
        drainage_years=args.drainage, drain_duration_min=args.drain_duration,
        runoff_coefficient=args.runoff_coefficient,
        inflows=args.inflows, manning_n=args.manning, landcover=args.landcover,
        landcover_table=args.landcover_table, infiltration=args.infiltration, buildings=args.buildings,
        probes=args.probes, initial_level_m=args.initial_level, initial_depth=args.initial_depth,
        boundary=args.boundary, coarsen=args.coarsen, frame_every_s=args.frame_every,
        report_every_s=args.report_every, source_step_s=args.source_step, command_line=command_line(args))
    interactive = sys.stderr.isatty()

    def show(percent: float, message: str) -> None:
        print(f"\r{percent:5.1f} %  {message}", end="", file=sys.stderr, flush=True)

    result = simulate(options, Feedback(show if interactive else None))
    if interactive:
        print(file=sys.stderr)
    print(result.summary_line())
    return 0
