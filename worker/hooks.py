"""How `fit` reports and is stopped: what it measures each epoch, and the hooks a caller gives it."""

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import torch

from worker.model import Kernels


class StopReason(StrEnum):
    """Why training stops before its last epoch."""

    CANCEL = "cancel"  # a user asked
    LEASE = "lease"  # another worker owns the job now: write nothing more
    SHUTDOWN = "shutdown"  # this worker is stopping: checkpoint and hand the job back
    TIMEOUT = "timeout"  # the job ran past its max_runtime_seconds


class Stopped(Exception):
    """Raised by a hook to stop training between steps.

    `fit` re-raises it with `checkpoint` set: a callable that captures the state at the stopping point.
    """

    def __init__(self, reason: StopReason) -> None:
        super().__init__(reason)
        self.reason = reason
        self.checkpoint: Callable[[], dict[str, Any]] | None = None


@dataclass(frozen=True)
class EpochResult:
    """What one epoch measured; a new measurement is a new field here (the database keeps it in `details`)."""

    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float
    images_per_second: float
    # Every training step's loss, in order (the epoch's share of the per-step curve).
    step_losses: list[float] = field(default_factory=list)
    # Test-set confusion matrix: confusion[true][predicted] counts, in the order of `classes`.
    confusion: list[list[int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    # For each of WEIGHT_LAYERS: ‖W_t − W_0‖/‖W_0‖ ("from_initial") and ‖W_t − W_{t−1}‖/‖W_{t−1}‖ ("from_previous").
    weight_change: dict[str, dict[str, float]] = field(default_factory=dict)
    # The first MAX_MISTAKES misclassified test images: their index in the test set and the class predicted;
    # `count` is how many there were in all.
    mistakes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StartInfo:
    device: str
    precision: str
    parameter_count: int
    steps_per_epoch: int
    steps_total: int
    start_epoch: int  # epochs already done (from a checkpoint)
    initial: Kernels


@dataclass
class EpochEnd:
    """What a hook gets after each epoch; `checkpoint()` builds the dict that `fit(resume=...)` accepts."""

    result: EpochResult
    history: list[EpochResult]
    initial: Kernels
    trained: Kernels
    checkpoint: Callable[[], dict[str, Any]]
    state_dict: Callable[[], dict[str, torch.Tensor]] = field(repr=False, default=dict)


class Hooks(Protocol):
    def on_start(self, info: StartInfo) -> None: ...

    def on_step(self, steps_done: int) -> None:
        """Called after every training step; may raise Stopped. Must not block."""

    def on_epoch_end(self, end: EpochEnd) -> None: ...


class QuietHooks:
    """Hooks that do nothing: for runs whose results are not wanted, and a base for those that want some."""

    def on_start(self, info: StartInfo) -> None:
        pass

    def on_step(self, steps_done: int) -> None:
        pass

    def on_epoch_end(self, end: EpochEnd) -> None:
        pass
