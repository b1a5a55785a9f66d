"""When a running job checkpoints: at the end of each epoch but the last, and mid-epoch once `CHECKPOINT_SECONDS`
have passed since its last checkpoint (or its start), so that a worker killed more often than an epoch lasts still
moves the job on. Either is written on the publisher's checkpoint lane while training goes on; a timed one is
skipped while the previous write is still under way, so training never waits for the disk. And where a stopping worker
hands its job back: at a checkpoint taken there, or at the job's previous one where the volume has no room for both."""

import time
from collections.abc import Callable

from service import jobs
from worker import retry
from worker.checkpoint import Checkpoint
from worker.checkpoints import Checkpoints
from worker.publish import Publisher

LANE = "checkpoints"


class CheckpointTimer:
    """Takes a claim's checkpoints, by epoch and by time (see the module's docstring)."""

    def __init__(self, every: float, checkpoints: Checkpoints, publisher: Publisher) -> None:
        self.every, self.checkpoints, self.publisher = every, checkpoints, publisher
        self.last = time.monotonic()

    def step(self, capture: Callable[[], Checkpoint] | None) -> None:
        """After a step: checkpoint here if it is time, `capture` is given (mid-epoch) and the lane is free."""
        if capture is None or time.monotonic() - self.last < self.every or self.publisher.busy(LANE):
            return
        self._keep(capture)

    def epoch_end(self, capture: Callable[[], Checkpoint]) -> None:
        """After an epoch, the last one too (what continuing a finished job goes on from)."""
        self._keep(capture)

    def hand_back(self, capture: Callable[[], Checkpoint]) -> str | None:
        """Checkpoint here and give the job back to the queue (this worker is stopping); the checkpoint it resumes
        from: this one, or where there is no room beside it, the one it had."""
        checkpoints = self.checkpoints
        name = checkpoints.save(capture())
        if name is not None:
            checkpoints.commit(name, point=jobs.hand_back)
            return name
        job_id, token = checkpoints.claim.job_id, checkpoints.claim.token
        retry.write(
            checkpoints.sessions,
            lambda s: jobs.hand_back(s, job_id, token, None),
            "handing it back",
            checkpoints.give_up,
            logger=checkpoints.log,
        )
        return checkpoints.current

    def _keep(self, capture: Callable[[], Checkpoint]) -> None:
        # Copied here, in the training thread: the next step changes the live tensors.
        snapshot = capture().on_host()
        self.last = time.monotonic()
        self.publisher.submit(lambda: self.checkpoints.keep(snapshot), lane=LANE)
