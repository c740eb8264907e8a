"""Long work off the GUI thread: a QThread runs a function with a Feedback
object; progress and the result come back as signals, Cancel sets the flag the
function checks."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal

from twin.errors import TwinError
from twin.progress import Cancelled, Feedback

log = logging.getLogger(__name__)


class _Runner(QObject):
    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str, str)  # message for the user, details for the log
    cancelled = Signal()

    def __init__(self, fn: Callable[[Feedback], Any]):
        super().__init__()
        self.fn = fn
        self.feedback = Feedback(lambda pct, msg: self.progress.emit(pct, msg))

    def run(self) -> None:
        try:
            result = self.fn(self.feedback)
        except Cancelled:
            self.cancelled.emit()
        except TwinError as exc:
            self.failed.emit(str(exc), "")
        except Exception as exc:  # a bug: the user gets a short message, the log the traceback
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.finished.emit(result)


class Job(QObject):
    """One background job; keep a reference until it reports back."""

    progress = Signal(float, str)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, fn: Callable[[Feedback], Any], parent: QObject | None = None):
        super().__init__(parent)
        self._thread = QThread()
        self._runner = _Runner(fn)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        self._runner.progress.connect(self.progress)
        for signal, relay in ((self._runner.finished, self.finished), (self._runner.failed, self.failed),
                              (self._runner.cancelled, self.cancelled)):
            signal.connect(relay)
            # Quit from the worker thread itself (QThread.quit is thread-safe): a queued
            # quit would wait for the GUI thread's event loop, which wait() blocks.
            signal.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._runner.feedback.cancel()

    def wait(self, ms: int = 30000) -> bool:
        """Wait up to ``ms`` for the job's thread to end; whether it did.

        Sleeps in Python rather than in QThread.wait, which holds the GIL and so
        would stop a job running Python code from ever finishing.
        """
        deadline = time.monotonic() + ms / 1000
        while self._thread.isRunning():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    @property
    def running(self) -> bool:
        return self._thread.isRunning()
