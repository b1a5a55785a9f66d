"""A checkpoint: what `fit` continues from (`Checkpoint`), written atomically and durably (`save`), read back
(`load`). Which of a job's checkpoints are kept, and which it resumes from: `worker.checkpoints`.

A checkpoint is loaded only from the service's own store, with `weights_only=True`: on disk it is a dict of tensors
and plain data (`Checkpoint.to_dict`), read back into a `Checkpoint` in one place (`Checkpoint.from_dict`).
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from service.contracts import EpochRecord
from service.spec import JobSpec
from worker import disk
from worker.atomic import atomic_write
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
