"""Errors that name the file, the field or line, and what to do.

Validation gathers every problem it finds and raises one error listing all of
them (the osmnx ``_validate`` idea), so a user fixes a manifest in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what to do about it."""

    source: str
    where: str
    message: str

    def __str__(self) -> str:
        parts = [p for p in (self.source, self.where) if p]
        return f"{': '.join(parts)}: {self.message}" if parts else self.message


class TwinError(Exception):
    """Base of every error Twin reports to a user (CLI exit code 2, a dialog in the app)."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("", "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class InputError(TwinError):
    """A user-supplied file, manifest or argument is missing, unreadable or wrong."""


def input_error(source: str | PathLike[str], where: str, message: str) -> InputError:
    """Shorthand for an InputError with one problem."""
    return InputError(Problem(str(source), where, message))
