"""Images per second of the lecture's pipeline and of the service's engine, on the same data and weights, and the
FLOPs of their training step (bench/peaks.py sets them against the device's peaks, as MFU).

Both pipelines are timed the same way: the warm-up steps (DataLoader workers starting, oneDNN/cuDNN choosing kernels,
allocator growth) run first, then the clock runs over the timed steps, with the device synchronised at both
ends so that queued GPU work is counted where it belongs.
"""

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from bench import lecture
from service.spec import JobSpec
from worker.checkpoint import Checkpoint
from worker.data import Dataset, subset
from worker.hooks import QuietHooks, StartInfo
from worker.model import build_model, lecture_loss, upscale
from worker.train import fit
from worker.tuning import Tuning

Progress = Callable[[int, int, int, float], None]  # (steps done, warm-up steps, all steps, seconds for this one)

# The engine's `fit` evaluates after its epoch; a few test images keep that out of the way.
ENGINE_TEST_IMAGES = 8
# A DataLoader's default prefetch_factor: each worker keeps this many batches ready ahead of the loop.
PREFETCH_FACTOR = 2


@dataclass(frozen=True)
class Throughput:
    """One pipeline's timed steps."""

    pipeline: str
    precision: str
    batch_size: int
    warmup: int
    steps: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.batch_size * self.steps / self.seconds

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so the clock sees it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _endless(loader: DataLoader) -> Generator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


def time_lecture(
    data: Dataset,
    cfg: JobSpec,
    device: torch.device,
    initial: dict[str, torch.Tensor],
    warmup: int,
    steps: int,
    workers: int,
    progress: Progress,
) -> Throughput:
    """The lecture's pipeline (bench/lecture.py) over the whole training set, starting from `initial`.

    The warm-up is at least the batches the workers prefetch: where the loop outruns them (on a GPU), the
    batches they made while it warmed up would otherwise be served instantly to the timed steps.
    """
    warmup = max(warmup, workers * PREFETCH_FACTOR)
    model = lecture.lecture_model(device)
    model.load_state_dict(initial)
    model.train()
    optimizer = lecture.lecture_optimizer(model, cfg.learning_rate)
    dataset = lecture.LectureCIFAR10(data.train_images, data.train_labels, lecture.lecture_transform(cfg.image_size))
    batches = _endless(lecture.make_loader(dataset, cfg.batch_size, workers, cfg.seed))
    began = last = time.perf_counter()
    for step in range(1, warmup + steps + 1):
        images, labels = next(batches)
        lecture.train_step(model, optimizer, images, labels)  # .item() inside: the step has finished
        now = time.perf_counter()
        progress(step, warmup, warmup + steps, now - last)
        last = now
        if step == warmup:
            began = now
    batches.close()  # shuts the DataLoader's worker processes down
    return Throughput("lecture", "fp32", cfg.batch_size, warmup, steps, last - began)


class _StepClock(QuietHooks):
    """Hooks for `fit`: the clock starts after the warm-up steps and stops after the last step."""

    def __init__(self, device: torch.device, warmup: int, total: int, progress: Progress) -> None:
        self.device, self.warmup, self.total, self.progress = device, warmup, total, progress
        self.info: StartInfo | None = None
        self.began = self.ended = self.last = 0.0

    def on_start(self, info: StartInfo) -> None:
        self.info = info
        self.last = time.perf_counter()

    def on_step(self, steps_done: int, checkpoint: Callable[[], Checkpoint] | None = None) -> None:
        # Only the two ends synchronise; the steps in between queue up on a GPU as they do in a job.
        if steps_done in (self.warmup, self.total):
            sync(self.device)
        now = time.perf_counter()
        self.progress(steps_done, self.warmup, self.total, now - self.last)
        self.last = now
        if steps_done == self.warmup:
            self.began = now
        if steps_done == self.total:
            self.ended = now


def time_engine(
    data: Dataset,
    cfg: JobSpec,
    device: torch.device,
    initial: dict[str, torch.Tensor],
    warmup: int,
    steps: int,
    progress: Progress,
    tuning: Tuning | None = None,
) -> Throughput:
    """The service's engine: `worker.train.fit` itself, with `tuning`, for one epoch of exactly warmup + steps
    batches."""
    total = warmup + steps
    # A seeded subset of exactly `total` batches makes fit's one epoch the steps to time.
    part = subset(data, total * cfg.batch_size, ENGINE_TEST_IMAGES, cfg.seed)
    clock = _StepClock(device, warmup, total, progress)
    fit(cfg, part, clock, tuning=tuning)
    assert clock.info is not None
    if not np.array_equal(clock.info.initial.conv1, initial["features.0.weight"].cpu().numpy()):
        raise RuntimeError("the engine did not start from the lecture's initial weights")
    return Throughput("engine", clock.info.precision, cfg.batch_size, warmup, steps, clock.ended - clock.began)


def train_step_flops(batch_size: int, image_size: int) -> int:
    """FLOPs of one training step (forward and backward; the optimiser adds no counted FLOPs).

    Counted on the meta device, where tensors have shapes but no data: instant, and the same on any machine.
    The lecture and the engine run the same model, so the count is the same for both.
    """
    meta = torch.device("meta")
    model = build_model(meta, seed=0).to(memory_format=torch.channels_last)
    images = torch.zeros(batch_size, 3, 32, 32, dtype=torch.uint8, device=meta)
    labels = torch.zeros(batch_size, dtype=torch.int64, device=meta)
    with FlopCounterMode(display=False) as counter:
        x = upscale(images, image_size).contiguous(memory_format=torch.channels_last)
        lecture_loss(model(x), labels).backward()
    return counter.get_total_flops()
