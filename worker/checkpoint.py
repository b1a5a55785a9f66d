"""Checkpoints: written atomically (temp file, fsync, rename), named per claim, one kept per job.

A checkpoint is loaded only from the service's own store, with `weights_only=True`. A retry resumes from the
newest readable checkpoint of the job: the one its row points at, or a later one whose pointer was never recorded
(its worker died, or lost the database, between writing the file and recording it).
"""

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.orm import Session, sessionmaker

from service import artifacts, jobs, records
from service.storage import ArtifactStore, checkpoint_key, fsync_replace
from worker import disk, retry

log = logging.getLogger("worker")


def save(obj: dict[str, Any], path: Path) -> int:
    """torch.save `obj` atomically; returns the file's size. A kill mid-write leaves no file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # Through a Python file, so that a full disk surfaces as ENOSPC (given a path, torch reports only a C++
        # stream position).
        with open(tmp, "wb") as f:
            torch.save(obj, f)
        fsync_replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        full = disk.as_disk_full(exc, path)
        if full is not None:
            raise full from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


def to_cpu_copy(state: Any) -> Any:
    """A copy of a checkpoint dict that training can no longer change (tensors cloned to host memory)."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: to_cpu_copy(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(to_cpu_copy(v) for v in state)
    return state


def load(source: Path | Any) -> dict[str, Any]:
    """Read a checkpoint this service wrote; weights_only refuses anything but tensors and plain data."""
    loaded: dict[str, Any] = torch.load(source, map_location="cpu", weights_only=True)
    return loaded


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

    def save(self, state: dict[str, Any], mid_epoch: bool) -> str:
        """Store `state` (a `fit` checkpoint) and return its name; the row does not point at it yet.

        DiskFull, before writing anything, when the volume has no room for it.
        """
        epoch = len(state["history"]) + (1 if mid_epoch else 0)
        name = artifacts.checkpoint_name(self.claim.token, epoch, int(state["step"]))
        staged = self.store.staging(self.claim.job_id, self.claim.token) / name
        disk.require(staged, disk.checkpoint_bytes(self.claim.spec.optimizer))
        save(state, staged)
        self.store.put_checkpoint(self.claim.job_id, name, staged)
        return name

    def commit(self, name: str, point: Any = records.set_checkpoint) -> None:
        """Point the job at `name` (with `point`, a fenced transition), then drop the one it pointed at before.

        On LeaseLost the new file is removed: the job's new owner never looks at it.
        """
        job_id, token = self.claim.job_id, self.claim.token
        try:
            retry.write(
                self.sessions,
                lambda session: point(session, job_id, token, name),
                f"job {job_id}: recording checkpoint {name}",
                self.give_up,
            )
        except jobs.LeaseLost:
            self.store.delete(checkpoint_key(job_id, name))
            raise
        if self.current and self.current != name:
            self.store.delete(checkpoint_key(job_id, self.current))
        self.current = name

    def load(self) -> dict[str, Any] | None:
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
                    state = load(f)
            except (OSError, RuntimeError, EOFError) as exc:
                log.error("job %s: checkpoint %s unreadable (%s); trying an older one", job_id, key, exc)
                continue
            if name != self.claim.checkpoint:
                log.info("job %s: found checkpoint %s, newer than the recorded %s", job_id, name, self.claim.checkpoint)
            return state
        return None

    def discard_all(self) -> None:
        """Drop every checkpoint of the job (once it succeeded: weights.pt holds what a user needs)."""
        self.store.discard_checkpoints(self.claim.job_id)
