"""How far a running job has come, and when it will be done: written by the training thread, read by the
heartbeat's."""

import time
from dataclasses import dataclass


@dataclass
class Progress:
    """Written by the training thread, read by the heartbeat thread (plain ints and floats: no locking)."""

    steps_done: int = 0
    steps_total: int | None = None
    steps_at_start: int = 0
    started: float = 0.0
    stepped_at: float = 0.0  # when the last step ended

    def step(self, steps_done: int, now: float | None = None) -> None:
        """A step ended: `steps_done` steps are done in all."""
        self.steps_done, self.stepped_at = steps_done, time.monotonic() if now is None else now

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Remaining time at this attempt's measured pace: the mean time per step up to the last step that ended,
        less the time since. The estimate falls while a step runs, instead of rising until it ends."""
        done_here = self.steps_done - self.steps_at_start
        if not self.steps_total or done_here <= 0:
            return None
        now = time.monotonic() if now is None else now
        per_step = (self.stepped_at - self.started) / done_here
        return round(max(0.0, per_step * (self.steps_total - self.steps_done) - (now - self.stepped_at)), 1)
