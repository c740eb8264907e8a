"""The ``twin`` command line.

Every user error ends with one clear message naming the file and the field,
exit code 2 and no traceback; an internal error writes its traceback to the
log file and says where it is.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from twin.errors import TwinError

EXIT_USER_ERROR = 2


def _log_path() -> Path:
    from platformdirs import user_log_dir

    path = Path(user_log_dir("twin"))
    path.mkdir(parents=True, exist_ok=True)
    return path / "twin-cli.log"


def build_parser() -> argparse.ArgumentParser:
    from twin.cli import city_cmd, compare_cmd, flood_cmd, run_cmd

    parser = argparse.ArgumentParser(prog="twin", description="Twin: urban digital twin for emergency plans.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    city_cmd.register(commands)
    run_cmd.register(commands)
    compare_cmd.register(commands)
    flood_cmd.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import twin

        print(f"twin {twin.__version__}")
        return 0
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.handler(args) or 0)
    except TwinError as exc:
        print(f"twin: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("twin: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: keep the details, show a short message
        log = _log_path()
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc() + "\n")
        print(f"twin: internal error: {type(exc).__name__}: {exc} (details in {log})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
