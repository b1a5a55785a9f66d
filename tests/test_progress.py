"""The ETA a running job shows: from the measured pace, and never rising while a step runs."""

import pytest

from worker.progress import Progress


def test_the_eta_is_the_measured_time_per_step_times_the_steps_left() -> None:
    progress = Progress(steps_done=0, steps_total=20, steps_at_start=0, started=100.0)
    assert progress.eta_seconds(now=100.5) is None  # nothing measured yet
    progress.step(10, now=110.0)  # 1 s a step
    assert progress.eta_seconds(now=110.0) == pytest.approx(10.0)


def test_the_eta_falls_while_a_slow_step_runs_instead_of_rising() -> None:
    progress = Progress(steps_done=0, steps_total=20, steps_at_start=0, started=100.0)
    progress.step(10, now=110.0)
    etas = [progress.eta_seconds(now=110.0 + t) for t in (0.0, 2.0, 4.0, 9.0, 30.0)]
    assert etas == [10.0, 8.0, 6.0, 1.0, 0.0]


def test_a_resumed_attempt_measures_only_its_own_steps() -> None:
    # Resumed at step 50 of 100: the 50 steps done before say nothing of this attempt's pace.
    progress = Progress(steps_done=50, steps_total=100, steps_at_start=50, started=0.0)
    progress.step(55, now=10.0)  # 2 s a step here
    assert progress.eta_seconds(now=10.0) == pytest.approx(90.0)
