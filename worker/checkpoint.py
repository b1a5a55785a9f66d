"""Checkpoints: written atomically (temp file, fsync, rename), named per claim, one kept per job.

A checkpoint is loaded only from the service's own store, with `weights_only=True`.
"""

import logging
import os
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.orm import Session, sessionmaker

from service import artifacts, jobs, records
from service.db import transaction
from service.storage import ArtifactStore, checkpoint_key, fsync_replace

log = logging.getLogger("worker")


def save(obj: dict[str, Any], path: Path) -> int:
    """torch.save `obj` atomically; returns the file's size. A kill mid-write leaves no file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


def load(source: Path | Any) -> dict[str, Any]:
    """Read a checkpoint this service wrote; weights_only refuses anything but tensors and plain data."""
    loaded: dict[str, Any] = torch.load(source, map_location="cpu", weights_only=True)
    return loaded


class Checkpoints:
    """One claim's checkpoints: saved under claim-unique names, pointed at by the job row, the previous dropped."""

    def __init__(self, store: ArtifactStore, sessions: sessionmaker[Session], claim: jobs.Claim) -> None:
        self.store, self.sessions, self.claim = store, sessions, claim
        self.current = claim.checkpoint  # what the job row points at

    def save(self, state: dict[str, Any], mid_epoch: bool) -> str:
        """Store `state` (a `fit` checkpoint) and return its name; the row does not point at it yet."""
        epoch = len(state["history"]) + (1 if mid_epoch else 0)
        name = artifacts.checkpoint_name(self.claim.token, epoch, int(state["step"]))
        staged = self.store.staging(self.claim.job_id, self.claim.token) / name
        save(state, staged)
        self.store.put_checkpoint(self.claim.job_id, name, staged)
        return name

    def commit(self, name: str, point: Any = records.set_checkpoint) -> None:
        """Point the job at `name` (with `point`, a fenced transition), then drop the one it pointed at before.

        On LeaseLost the new file is removed: the job's new owner never looks at it.
        """
        job_id, token = self.claim.job_id, self.claim.token
        try:
            with transaction(self.sessions) as session:
                point(session, job_id, token, name)
        except jobs.LeaseLost:
            self.store.delete(checkpoint_key(job_id, name))
            raise
        if self.current and self.current != name:
            self.store.delete(checkpoint_key(job_id, self.current))
        self.current = name

    def load(self) -> dict[str, Any] | None:
        """The checkpoint the claim resumes from, or None (none, or unreadable: then training starts over)."""
        name = self.claim.checkpoint
        if not name:
            return None
        key = checkpoint_key(self.claim.job_id, name)
        try:
            with self.store.open(key) as f:
                return load(f)
        except (OSError, RuntimeError, EOFError) as exc:
            log.error("job %s: checkpoint %s unreadable (%s); starting over", self.claim.job_id, key, exc)
            return None

    def discard_all(self) -> None:
        """Drop every checkpoint of the job (once it succeeded: weights.pt holds what a user needs)."""
        self.store.discard_checkpoints(self.claim.job_id)
