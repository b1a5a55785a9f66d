"""Publishing a job's files: fenced by the claim's lease, and done on one background thread.

A file is written into the claim's own staging folder, prepared (on S3: uploaded under a key of its own), then
published through the store inside the transaction that checks the lease and records the artifact's row: a worker
that lost its lease never replaces a file its successor published. Pictures and checkpoints are written on
background threads (`Publisher`, one for each) while the next epoch trains, so the GPU does not wait for the disk or
for matplotlib, and neither waits for the other.
"""

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service import artifacts, jobs, records
from service.storage import ArtifactStore
from worker import disk, retry
from worker.joblog import JobLogger

log = logging.getLogger("worker")


class Publisher:
    """Background threads for a job's file work, one per kind (`LANES`): a checkpoint's disk writes and the drawing
    of pictures overlap. Each lane runs its work in submission order, at most one piece in flight (so at most one
    snapshot of the weights waits in memory). Errors surface in the training thread."""

    LANES = ("checkpoints", "pictures")

    def __init__(self, job_id: int) -> None:
        self.pools = {
            lane: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{lane}-{job_id}") for lane in self.LANES
        }
        self.pending: dict[str, Future[None]] = {}

    def submit(self, work: Callable[[], None], lane: str = "pictures") -> None:
        """Run `work` once the lane's previous work is done (re-raising what that raised)."""
        self._wait(lane)
        self.pending[lane] = self.pools[lane].submit(work)

    def busy(self, lane: str) -> bool:
        """Whether the lane's last piece of work is still running."""
        pending = self.pending.get(lane)
        return pending is not None and not pending.done()

    def wait(self) -> None:
        """Block until every lane's work is done; then re-raise the first error, if any."""
        first: Exception | None = None
        for lane in self.LANES:
            try:
                self._wait(lane)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def check(self) -> None:
        """Cheap, for every step: re-raise a failure of finished work without waiting for unfinished work."""
        for lane, pending in list(self.pending.items()):
            if pending.done():
                self._wait(lane)

    def close(self) -> None:
        """Finish what was submitted, ignoring its errors (the run is ending some other way already)."""
        try:
            self.wait()
        except Exception as exc:
            log.warning("background file work failed while stopping: %s", exc)
        for pool in self.pools.values():
            pool.shutdown()

    def _wait(self, lane: str) -> None:
        pending = self.pending.pop(lane, None)
        if pending is not None:
            pending.result()


class ArtifactWriter:
    """Writes one claim's artifacts: staged in the claim's own folder, published under its lease."""

    def __init__(
        self,
        store: ArtifactStore,
        sessions: sessionmaker[Session],
        claim: jobs.Claim,
        give_up: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store, self.sessions, self.claim, self.give_up = store, sessions, claim, give_up
        self.log = JobLogger(claim.job_id)

    @property
    def staging(self) -> Path:
        """This claim's own folder: a worker that lost the job cleans up only its own, never its successor's."""
        return self.store.staging(self.claim.job_id, self.claim.token)

    def publish(self, name: str, write: Callable[[Path], object]) -> None:
        """Write the artifact `name` with `write(path)`; if this worker still holds the job, make it current.

        A full disk raises DiskFull (naming the volume), whatever error the writer itself gave.
        """
        staged = self.staging / name.replace("/", "-")
        try:
            write(staged)
        except (OSError, RuntimeError, ValueError) as exc:
            full = disk.as_disk_full(exc, staged)
            if full is not None:
                raise full from exc
            raise
        job_id, token = self.claim.job_id, self.claim.token
        size = staged.stat().st_size
        # Outside the transaction: an upload to a bucket takes seconds, and the row stays locked only for the commit.
        pending = self.store.prepare(job_id, token, name, staged)
        published: list[str] = []

        def make_current() -> str:
            # Once only: a retry after a commit that failed finds the file already moved into place.
            if not published:
                published.append(self.store.publish(job_id, token, name, pending))
            return published[0]

        try:
            replaced = retry.write(
                self.sessions,
                lambda session: records.record_artifact(
                    session, job_id, token, name, artifacts.content_type(name), size, publish=make_current
                ),
                f"recording {name}",
                self.give_up,
                logger=self.log,
            )
        except (jobs.LeaseLost, retry.DatabaseAway):
            # Never made current, so nobody reads it. Once `publish` ran, a commit may have gone through unseen:
            # then the file stays (the job's deletion removes it with the rest).
            if not published:
                self.store.abandon(pending)
            raise
        if replaced is not None and replaced != published[0]:
            # Only after the commit: until then the old key is what readers were given.
            self.store.delete(replaced)

    def discard(self) -> None:
        """Remove whatever this claim staged and did not publish."""
        self.store.discard_staging(self.claim.job_id, self.claim.token)
