"""``twin compare``: which plan is better, and how sure we are, from a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from twin.errors import InputError, Problem


def register(commands: argparse._SubParsersAction) -> None:
    cmp = commands.add_parser("compare", help="compare the plans of a results folder, replication by replication")
    cmp.add_argument("folder", type=Path, help="results folder written by a scenario run")
    cmp.add_argument("--csv", type=Path, metavar="OUT",
                     help="also write summary.csv, paired.csv and series.csv into this folder")
    cmp.add_argument("--kpis", help="comma-separated KPI names to show (default: all)")
    cmp.add_argument("--baseline", metavar="PLAN",
                     help="compare every plan with this one (key or name) instead of every pair")
    cmp.add_argument("--alpha", type=float, default=0.05,
                     help="significance level; intervals are at 1 - alpha confidence (default 0.05)")
    cmp.set_defaults(handler=cmd_compare)


def open_store(folder: Path) -> Any:
    """The results store in ``folder``; a missing folder is the user's error."""
    if not folder.exists():
        raise InputError(Problem(str(folder), "", "no such results folder"))
    from twin.sim.store import ResultsStore

    return ResultsStore(folder)


def cmd_compare(args: argparse.Namespace) -> int:
    from twin.sim.compare import compare_store

    if not 0.0 < args.alpha < 1.0:
        raise InputError(Problem("--alpha", "", f"must lie strictly between 0 and 1, got {args.alpha:g}"))
    kpis = [k.strip() for k in args.kpis.split(",") if k.strip()] if args.kpis is not None else None
    comparison = compare_store(open_store(args.folder), baseline=args.baseline, confidence=1.0 - args.alpha,
                               kpis=kpis)
    print(comparison.table_text(), end="")
    if args.csv is not None:
        for path in comparison.to_csv(args.csv):
            print(f"wrote {path}")
    return 0
