"""Choosing between stepping on threads and on the calling thread, from the steps' times."""

from __future__ import annotations

from models.flood.kernel_choice import FIRST_WAIT, LONGEST_WAIT, TRIAL_STEPS, KernelChoice


def _run(choice: KernelChoice, seconds: dict[str, float], steps: int) -> list[str]:
    """Step ``steps`` times, each way taking its time from ``seconds``; the ways used, in order."""
    used = []
    for _ in range(steps):
        way = choice.pick()
        choice.record(way, seconds[way])
        used.append(way)
    return used


def test_no_other_way_means_no_trials() -> None:
    choice = KernelChoice("threads", None)
    assert set(_run(choice, {"threads": 1.0}, 10_000)) == {"threads"}


def test_a_quicker_other_way_takes_over_at_its_first_trial() -> None:
    choice = KernelChoice("threads", "one thread")
    used = _run(choice, {"threads": 5.0, "one thread": 1.0}, 2000)  # a busy core holds the threads up
    assert used[:FIRST_WAIT] == ["threads"] * FIRST_WAIT
    assert used[FIRST_WAIT:FIRST_WAIT + TRIAL_STEPS] == ["one thread"] * TRIAL_STEPS
    assert choice.current == "one thread" and choice.switches == 1
    assert used.count("threads") < FIRST_WAIT + 10 * TRIAL_STEPS  # the threads are tried again, rarely


def test_the_way_in_use_stays_when_it_is_quicker_and_trials_grow_rare() -> None:
    choice = KernelChoice("threads", "one thread")
    used = _run(choice, {"threads": 1.0, "one thread": 1.8}, 50_000)
    assert choice.current == "threads" and choice.switches == 0
    trials = used.count("one thread") // TRIAL_STEPS
    assert 10 <= trials <= 20  # 16, 80, 336, 1360 steps apart, then every 4096
    assert used[-LONGEST_WAIT:].count("one thread") <= TRIAL_STEPS


def test_close_times_do_not_switch() -> None:
    choice = KernelChoice("threads", "one thread")
    _run(choice, {"threads": 1.0, "one thread": 0.8}, 5000)  # within the margin: noise, not a busy core
    assert choice.switches == 0


def test_it_comes_back_when_the_core_is_free_again() -> None:
    choice = KernelChoice("threads", "one thread")
    _run(choice, {"threads": 5.0, "one thread": 1.0}, 500)
    assert choice.current == "one thread"
    _run(choice, {"threads": 0.55, "one thread": 1.0}, 3000)  # at the next trial (they grow rare)
    assert choice.current == "threads" and choice.switches == 2
