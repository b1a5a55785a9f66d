"""One claim's checkpoints: saved under claim-unique names, the job's row pointed at the newest, the one before
dropped. A retry resumes from the newest readable checkpoint of the job: the one its row points at, or a later one
whose pointer was never recorded (its worker died, or lost the database, between writing the file and recording it).
"""

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service import artifacts, jobs, records
from service.storage import ArtifactStore, checkpoint_key
from worker import disk, retry
from worker.checkpoint import Checkpoint, load, save
from worker.joblog import JobLogger


class Checkpoints:
    """One claim's checkpoints: saved under claim-unique names, pointed at by the job row, the previous dropped."""

    def __init__(
        self,
        store: ArtifactStore,
        sessions: sessionmaker[Session],
        claim: jobs.Claim,
        give_up: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store, self.sessions, self.claim, self.give_up = store, sessions, claim, give_up
        self.current = claim.checkpoint  # what the job row points at
        self.log = JobLogger(claim.job_id)

    def save(self, checkpoint: Checkpoint) -> str | None:
        """Store `checkpoint` and return its name; the row does not point at it yet. None, saying so, when it fits
        only once the job's previous checkpoint is gone: that one still protects the job (`disk.checkpoint_room`).

        DiskFull, before writing anything, when the volume has no room for it even then.
        """
        name = artifacts.checkpoint_name(self.claim.token, *checkpoint.position)
        staged = self.store.staging(self.claim.job_id, self.claim.token) / name
        if not disk.checkpoint_room(staged.parent, disk.checkpoint_bytes(self.claim.spec.optimizer), self.own_bytes()):
            self.log.warning(
                "no room on %s for a checkpoint beside this job's own at %s: training on without a new one (a run "
                "stopped now resumes from there)",
                disk.mount_point(staged),
                artifacts.describe_position(self.current),
            )
            return None
        save(checkpoint.to_dict(), staged)
        self.store.put_checkpoint(self.claim.job_id, name, staged)
        return name

    def keep(self, checkpoint: Checkpoint) -> None:
        """Save `checkpoint` and point the job at it (unless there was no room beside the previous one)."""
        name = self.save(checkpoint)
        if name is not None:
            self.commit(name)

    def own_bytes(self) -> int:
        """The room the job's current checkpoint takes on the volume it stages files on (none in a bucket)."""
        if not self.current:
            return 0
        path = self.store.local_path(checkpoint_key(self.claim.job_id, self.current))
        return disk.size_on_volume(path, self.store.staging(self.claim.job_id, self.claim.token))

    def commit(self, name: str, point: Any = records.set_checkpoint) -> None:
        """Point the job at `name` (with `point`, a fenced transition), then drop the one it pointed at before.

        On LeaseLost the new file is removed: the job's new owner never looks at it.
        """
        job_id, token = self.claim.job_id, self.claim.token
        try:
            retry.write(
                self.sessions,
                lambda session: point(session, job_id, token, name),
                f"recording checkpoint {name}",
                self.give_up,
                logger=self.log,
            )
        except jobs.LeaseLost:
            self.store.delete(checkpoint_key(job_id, name))
            raise
        if self.current and self.current != name:
            self.store.delete(checkpoint_key(job_id, self.current))
        self.current = name

    def load(self) -> Checkpoint | None:
        """The checkpoint the claim resumes from, or None (none, or none readable: then training starts over).

        The newest by position (epoch, step) among the one the row points at and any the store holds, so a
        checkpoint written but never recorded is not lost; an unreadable one is passed over for the next newest.
        """
        job_id = self.claim.job_id
        names = set(self.store.checkpoint_names(job_id)) | ({self.claim.checkpoint} if self.claim.checkpoint else set())
        ranked = sorted(
            (n for n in names if artifacts.checkpoint_position(n) is not None),
            key=lambda n: (artifacts.checkpoint_position(n), n == self.claim.checkpoint),
            reverse=True,
        )
        for name in ranked:
            key = checkpoint_key(job_id, name)
            try:
                with self.store.open(key) as f:
                    state = Checkpoint.from_dict(load(f))
            except (OSError, RuntimeError, EOFError, KeyError, TypeError, AttributeError, ValidationError) as exc:
                # A torn file, or one that holds something else than a checkpoint this version can go on from.
                self.log.error("checkpoint %s unreadable (%s); trying an older one", key, exc)
                continue
            if name != self.claim.checkpoint:
                self.log.info("found checkpoint %s, newer than the recorded %s", name, self.claim.checkpoint)
            return state
        return None

    def discard_all(self) -> None:
        """Drop every checkpoint, the job's row pointing at none (training is over and only they take the room
        weights.pt needs; the job then cannot be continued)."""
        job_id, token = self.claim.job_id, self.claim.token
        forget = lambda s: jobs.fenced_update(s, job_id, token, checkpoint=None)  # noqa: E731
        retry.write(self.sessions, forget, "forgetting its checkpoint", self.give_up, logger=self.log)
        self.store.discard_checkpoints(job_id)
        self.current = None

    def discard_all_but_current(self) -> None:
        """Drop every checkpoint of the job but the one its row points at: once it succeeded, the final one, which a
        continue goes on from; the others (earlier epochs', killed attempts') nothing will read again."""
        for name in self.store.checkpoint_names(self.claim.job_id):
            if name != self.current:
                self.store.delete(checkpoint_key(self.claim.job_id, name))
