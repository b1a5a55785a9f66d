"""Checkpoints: what `fit` continues from (`Checkpoint`), written atomically, named per claim, one kept per job.

A checkpoint is loaded only from the service's own store, with `weights_only=True`: on disk it is a dict of tensors
and plain data (`Checkpoint.to_dict`), read back into a `Checkpoint` in one place (`Checkpoint.from_dict`). A retry
resumes from the newest readable checkpoint of the job: the one its row points at, or a later one whose pointer was
never recorded (its worker died, or lost the database, between writing the file and recording it).
"""

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service import artifacts, jobs, records
from service.contracts import EpochRecord
from service.spec import JobSpec
from service.storage import ArtifactStore, checkpoint_key
from worker import disk, retry
from worker.atomic import atomic_write
from worker.joblog import JobLogger
from worker.model import Kernels


@dataclass(frozen=True)
class RngState:
    """The random generators' states: torch's CPU one (dropout on the CPU), the shuffle's, the CUDA one."""

    cpu: torch.Tensor
    shuffle: torch.Tensor
    cuda: torch.Tensor | None = None

    def restore(self, shuffle: torch.Generator, device: torch.device) -> None:
        """Set the generators back to these states."""
        torch.set_rng_state(self.cpu)
        shuffle.set_state(self.shuffle)
        if device.type == "cuda" and self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, device)


@dataclass(frozen=True)
class Checkpoint:
    """Everything `fit` needs to go on exactly: after `step` steps of epoch len(history) + 1 (0: before any)."""

    spec: JobSpec
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    # The shuffle as the epoch began, so that its order is drawn again; the others as they are at the stop.
    rng: RngState
    initial: Kernels
    history: list[EpochRecord]
    step: int = 0
    loss_sum: float = 0.0
    # Mid-epoch only: the epoch's step losses so far, and the weights it began with (what its change is measured from).
    step_losses: torch.Tensor | None = None
    previous_weights: dict[str, torch.Tensor] | None = None

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, step): the epoch it stopped in (the last one finished, at step 0) and the steps done of it."""
        return len(self.history) + (1 if self.step else 0), self.step

    def to_dict(self) -> dict[str, Any]:
        """What is saved: tensors and plain data only, so that it loads with `weights_only=True`."""
        mid_epoch = {"step_losses": self.step_losses, "previous_weights": self.previous_weights}
        return {
            **{k: v for k, v in mid_epoch.items() if v is not None},
            "config": self.spec.model_dump(mode="json"),
            "model": self.model,
            "optimizer": self.optimizer,
            "rng": {
                "torch": self.rng.cpu,
                "shuffle": self.rng.shuffle,
                **({"cuda": self.rng.cuda} if self.rng.cuda is not None else {}),
            },
            "step": self.step,
            "loss_sum": self.loss_sum,
            "initial": {k: torch.from_numpy(v) for k, v in asdict(self.initial).items()},
            "history": [r.model_dump() for r in self.history],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> "Checkpoint":
        """A saved checkpoint; KeyError, TypeError or ValidationError when `state` is not one."""
        return cls(
            spec=JobSpec.model_validate(state["config"]),
            model=state["model"],
            optimizer=state["optimizer"],
            rng=RngState(state["rng"]["torch"], state["rng"]["shuffle"], state["rng"].get("cuda")),
            initial=Kernels(**{k: v.numpy() for k, v in state["initial"].items()}),
            history=[EpochRecord.model_validate(r) for r in state["history"]],
            step=int(state.get("step", 0)),
            loss_sum=float(state.get("loss_sum", 0.0)),
            step_losses=state.get("step_losses"),
            previous_weights=state.get("previous_weights"),
        )

    def on_host(self) -> "Checkpoint":
        """A copy that training can no longer change: every tensor cloned to host memory."""
        return replace(
            self,
            model=to_cpu_copy(self.model),
            optimizer=to_cpu_copy(self.optimizer),
            rng=to_cpu_copy(self.rng),
            step_losses=to_cpu_copy(self.step_losses),
            previous_weights=to_cpu_copy(self.previous_weights),
        )


def save(obj: Mapping[str, Any], path: Path) -> int:
    """torch.save `obj` atomically and durably; returns the file's size. A kill mid-write leaves no file at `path`."""
    try:
        with atomic_write(path, durable=True) as tmp, open(tmp, "wb") as f:
            # Through a Python file, so that a full disk surfaces as ENOSPC (given a path, torch reports only a C++
            # stream position).
            torch.save(obj, f)
    except (OSError, RuntimeError) as exc:
        full = disk.as_disk_full(exc, path)
        if full is not None:
            raise full from exc
        raise
    return path.stat().st_size


def to_cpu_copy(state: Any) -> Any:
    """A copy of `state` that training can no longer change (tensors cloned to host memory, containers copied)."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: to_cpu_copy(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(to_cpu_copy(v) for v in state)
    if isinstance(state, RngState):
        return RngState(*(to_cpu_copy(v) for v in (state.cpu, state.shuffle, state.cuda)))
    return state


def load(source: Path | Any) -> dict[str, Any]:
    """Read a file this service wrote with `save`; weights_only refuses anything but tensors and plain data."""
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
        self.log = JobLogger(claim.job_id)

    def save(self, checkpoint: Checkpoint) -> str:
        """Store `checkpoint` and return its name; the row does not point at it yet.

        DiskFull, before writing anything, when the volume has no room for it.
        """
        name = artifacts.checkpoint_name(self.claim.token, *checkpoint.position)
        staged = self.store.staging(self.claim.job_id, self.claim.token) / name
        disk.require(staged, disk.checkpoint_bytes(self.claim.spec.optimizer))
        save(checkpoint.to_dict(), staged)
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

    def discard_all_but_current(self) -> None:
        """Drop every checkpoint of the job but the one its row points at: once it succeeded, the final one, which a
        continue goes on from; the others (earlier epochs', killed attempts') nothing will read again."""
        for name in self.store.checkpoint_names(self.claim.job_id):
            if name != self.current:
                self.store.delete(checkpoint_key(self.claim.job_id, name))
