"""Of two ways to run the flood step, the one that is quicker on this machine now.

The step runs on threads, one band of rows each, and waits for the last
band (see ``hydraulics``).  When other work holds one of the cores (the
desktop's own drawing, another program), the thread there runs its band
only when the system gives it a turn, and every step waits for that turn:
on two cores with one busy program, a 200 x 200 grid stepped 5x slower on
two threads than on one.  Both ways give the same results to the bit, so
the simulation may switch between them at any step: it times its steps,
and every so often tries a few steps the other way, keeping whichever was
quicker.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

K = TypeVar("K")

#: Steps the first trial of the other way waits for; after a trial that changes nothing the wait grows
#: fourfold, up to ``LONGEST_WAIT`` (a trial costs up to ``TRIAL_STEPS`` steps at the slower way's pace).
FIRST_WAIT, LONGEST_WAIT = 16, 4096
#: Steps timed in a trial, and the recent steps of the way in use they are compared with (medians: a step
#: that applies the rain or crosses a report costs more than one that does not).
TRIAL_STEPS = 5
#: The other way must take less than this share of the time of the way in use to replace it.
MARGIN = 0.7


class KernelChoice(Generic[K]):
    """Chooses between ``preferred`` and ``other`` (None: no choice) from the times of their recent steps."""

    def __init__(self, preferred: K, other: K | None) -> None:
        self.current = preferred
        self.other = other
        self._recent: dict[int, deque[float]] = {0: deque(maxlen=TRIAL_STEPS), 1: deque(maxlen=TRIAL_STEPS)}
        self._trial_left = 0
        self._wait = FIRST_WAIT
        self._steps = 0
        self._next_trial = FIRST_WAIT
        self.switches = 0

    def pick(self) -> K:
        """The way to run the next step."""
        if self.other is None:
            return self.current
        if self._trial_left == 0 and self._steps >= self._next_trial:
            self._trial_left = TRIAL_STEPS
            self._recent[1].clear()
        return self.other if self._trial_left else self.current  # type: ignore[return-value]

    def steps_left(self) -> int:
        """Steps the way :meth:`pick` just gave holds for (those a caller may run in one go)."""
        if self.other is None:
            return LONGEST_WAIT
        if self._trial_left:
            return self._trial_left
        return max(1, self._next_trial - self._steps)

    def record(self, kernel: K, seconds: float, steps: int = 1) -> None:
        """The time of ``steps`` steps run the ``kernel`` way (the one :meth:`pick` gave, for at most
        :meth:`steps_left` steps); each counts as their mean."""
        self._steps += steps
        if self.other is None:
            return
        each = seconds / steps
        if kernel is self.current:
            self._recent[0].extend([each] * min(steps, TRIAL_STEPS))
            return
        self._recent[1].extend([each] * min(steps, TRIAL_STEPS))
        if self._trial_left > 0:
            self._trial_left -= min(steps, self._trial_left)
            if self._trial_left == 0:
                self._decide()

    def _decide(self) -> None:
        mine, theirs = self._recent[0], self._recent[1]
        if len(mine) == TRIAL_STEPS and _median(theirs) < MARGIN * _median(mine):
            self.current, self.other = self.other, self.current  # type: ignore[assignment]
            self._recent = {0: theirs, 1: deque(maxlen=TRIAL_STEPS)}
            self._wait = FIRST_WAIT
            self.switches += 1
        else:
            self._wait = min(4 * self._wait, LONGEST_WAIT)
        self._next_trial = self._steps + self._wait


def _median(values: deque[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
