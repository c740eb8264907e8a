"""One progress-and-cancel object for long work, whoever listens (CLI bar, Qt dialog).

Modelled on QGIS Processing's ``feedback``: the worker reports progress and
checks ``cancelled``; the caller supplies a callback and may cancel.
"""

from __future__ import annotations

from collections.abc import Callable

from twin.errors import TwinError


class Cancelled(TwinError):
    """The user cancelled the work; nothing half-done was kept."""


class Feedback:
    """Progress in percent with a message, and a cancel flag checked by the worker."""

    def __init__(self, on_progress: Callable[[float, str], None] | None = None):
        self._on_progress = on_progress
        self._cancelled = False
        self.percent = 0.0
        self.message = ""

    def progress(self, percent: float, message: str = "") -> None:
        """Report progress; raises :class:`Cancelled` if the caller has cancelled."""
        self.check()
        self.percent = max(0.0, min(100.0, percent))
        self.message = message or self.message
        if self._on_progress is not None:
            self._on_progress(self.percent, self.message)

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check(self) -> None:
        if self._cancelled:
            raise Cancelled("cancelled by the user")


NO_FEEDBACK = Feedback()
