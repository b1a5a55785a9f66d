"""How `fit` reports and is stopped: the hooks a caller gives it, and what they are told.

What an epoch measured is a `service.contracts.EpochRecord`: the worker stores it, the API reads it back.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import torch

from service.contracts import EpochRecord
from worker.checkpoint import Checkpoint
from worker.model import Kernels


class StopReason(StrEnum):
    """Why training stops before its last epoch."""

    CANCEL = "cancel"  # a user asked
    LEASE = "lease"  # another worker owns the job now: write nothing more
    SHUTDOWN = "shutdown"  # this worker is stopping: checkpoint and hand the job back
    TIMEOUT = "timeout"  # the job ran past its max_runtime_seconds


class Stopped(Exception):
    """Raised by a hook to stop training, between steps or within one.

    Between steps, `fit` re-raises it with `checkpoint` set: a callable that captures the state at the stopping
    point. Within a step (or an evaluation) there is no such point: `checkpoint` stays None and `unfinished` names
    the work dropped.
    """

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason = reason
        self.checkpoint: Callable[[], Checkpoint] | None = None
        self.unfinished: str | None = None


@dataclass(frozen=True)
class StartInfo:
    """What a hook is told before the first step: where and how training runs, and where it starts from."""

    device: str
    precision: str
    parameter_count: int
    steps_per_epoch: int
    steps_total: int
    start_epoch: int  # epochs already done (from a checkpoint)
    initial: Kernels


@dataclass
class EpochEnd:
    """What a hook gets after each epoch; `checkpoint()` captures what `fit(resume=...)` continues from (call it
    before the hook returns: it holds the live model's tensors, which training goes on changing)."""

    result: EpochRecord
    history: list[EpochRecord]
    initial: Kernels
    trained: Kernels
    checkpoint: Callable[[], Checkpoint]
    state_dict: Callable[[], dict[str, torch.Tensor]] = field(repr=False, default=dict)


class Hooks(Protocol):
    def on_start(self, info: StartInfo) -> None: ...

    def on_step(self, steps_done: int, checkpoint: Callable[[], Checkpoint] | None = None) -> None:
        """Called after every training step; may raise Stopped. Must not block, but for `checkpoint()`: mid-epoch,
        what captures the state there (as `EpochEnd.checkpoint`), for a hook that checkpoints by time."""

    def within_step(self) -> None:
        """Called before each layer's forward and as each weight's gradient is computed, in training and
        evaluation; may raise Stopped for a stop that needs no checkpoint (the work under way is dropped), so that a
        long step does not delay it. Must be cheap: it runs dozens of times a step."""

    def on_epoch_end(self, end: EpochEnd) -> None: ...


class QuietHooks:
    """Hooks that do nothing: for runs whose results are not wanted, and a base for those that want some."""

    def on_start(self, info: StartInfo) -> None:
        pass

    def on_step(self, steps_done: int, checkpoint: Callable[[], Checkpoint] | None = None) -> None:
        pass

    def within_step(self) -> None:
        pass

    def on_epoch_end(self, end: EpochEnd) -> None:
        pass
