"""Training as in the lecture: torchvision's AlexNet with a 10-way head, CIFAR-10 upscaled, NLL on log-softmax.

Knows nothing of HTTP or SQL: `fit` takes numbers and a dataset and reports through `Hooks`, so it runs the same in
the worker, the tests and the benchmark. Read top-down: `train_step` is one step; `train_one_epoch` takes an epoch's
steps; `finish_epoch` evaluates it (`worker.evaluation`) and measures it into an `EpochRecord`; `fit` loops over the
epochs. Where training is between steps (the model, its optimizer, the shuffle, the position) is a `TrainState`
(`worker.state`), which makes the `Checkpoint` a stopped job resumes from. The data waits on the training device
(`worker.batches`); `Tuning` holds the choices that change speed, not results.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from service.contracts import EpochRecord
from service.spec import JobSpec
from worker.batches import DeviceDataset
from worker.checkpoint import Checkpoint
from worker.data import FULL_TEST, FULL_TRAIN, Dataset, make_synthetic
from worker.evaluation import evaluate
from worker.hardware import resolve_device, resolve_precision
from worker.hooks import EpochEnd, Hooks, QuietHooks, StartInfo, Stopped
from worker.model import kernels, lecture_loss, steps_per_epoch
from worker.state import TrainState
from worker.tuning import Tuning, prepare, use_cudnn_benchmark


def train_step(
    forward: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, bf16: bool
) -> torch.Tensor:
    """One step: forward (under bf16 autocast when asked), the lecture's loss, backward, the optimizer; the loss,
    detached and not synchronised."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = forward(x)
    loss = lecture_loss(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@dataclass(frozen=True)
class Setup:
    """What stays as it is through a fit: the spec, the speed choices, the precision, the data, the forward pass."""

    cfg: JobSpec
    tuning: Tuning
    bf16: bool
    data: DeviceDataset
    forward: nn.Module  # the model itself, or its compiled wrapper (`worker.tuning.prepare`)


def train_one_epoch(state: TrainState, setup: Setup, hooks: Hooks) -> Stopped | None:
    """The current epoch's steps from `state.step` on. A stop asked for before its last step is raised at once, able to
    checkpoint there; one asked for at its last step is returned, to be raised once the epoch is finished."""
    cfg, data, per_epoch = setup.cfg, setup.data, len(state.step_losses)
    setup.forward.train()
    order = state.begin_epoch(len(data.train_images))
    for step in range(state.step, per_epoch):
        idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        x, y = data.train_images.batch(idx), data.train_labels[idx]
        use_cudnn_benchmark(x.device, setup.tuning, len(idx), cfg.batch_size)
        try:
            loss = train_step(setup.forward, state.optimizer, x, y, setup.bf16)
        except Stopped as stop:  # within the step, before the optimizer changed anything: the step is dropped
            stop.unfinished = f"step {step + 1} of epoch {state.epochs_done + 1}"
            raise
        state.add_step(loss, len(idx))
        try:
            # At the epoch's last step the epoch's own checkpoint follows at once.
            hooks.on_step(
                state.epochs_done * per_epoch + state.step, state.checkpoint if state.step < per_epoch else None
            )
        except Stopped as stop:
            if state.step < per_epoch:  # mid-epoch: a hook may save this and continue later
                stop.checkpoint = state.checkpoint
                raise
            return stop
    return None


def finish_epoch(state: TrainState, setup: Setup, began: float) -> EpochRecord:
    """Evaluate the epoch just trained (it began at `began`, on the perf_counter) and measure it into its record."""
    data = setup.data
    train_loss = state.loss_sum.item() / len(data.train_images)  # the one sync of the epoch's training
    train_seconds = time.perf_counter() - began
    try:
        evaluation = evaluate(
            setup.forward, data.test_images, data.test_labels, setup.bf16, setup.tuning, setup.cfg.batch_size
        )
    except Stopped as stop:
        stop.unfinished = f"the evaluation of epoch {state.epochs_done + 1}"
        raise
    weight_change = state.weight_change()
    record = EpochRecord(
        epoch=state.epochs_done + 1,
        train_loss=train_loss,
        test_loss=evaluation.loss,
        test_accuracy=evaluation.accuracy,
        seconds=time.perf_counter() - began,
        images_per_second=state.images / train_seconds,
        step_losses=state.step_losses.tolist(),
        confusion=evaluation.confusion,
        classes=list(data.classes),
        weight_change=weight_change,
        mistakes=evaluation.mistakes,
    )
    state.end_epoch(record)
    return record


def fit(
    cfg: JobSpec, data: Dataset, hooks: Hooks, resume: Checkpoint | None = None, tuning: Tuning | None = None
) -> list[EpochRecord]:
    """Train for `cfg.epochs` epochs, continuing from `resume`; return every epoch's record."""
    tuning = tuning or Tuning()
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    per_epoch = steps_per_epoch(len(data.train_labels), cfg.batch_size)
    if resume is None:
        state = TrainState.start(cfg, device, per_epoch)
    else:
        state = TrainState.from_checkpoint(cfg, device, per_epoch, resume)
    on_device = DeviceDataset.load(data, device, cfg.image_size, tuning)
    setup = Setup(cfg, tuning, precision == "bf16", on_device, prepare(state.model, tuning))
    parameters = sum(p.numel() for p in state.model.parameters())
    start = StartInfo(
        str(device), precision, parameters, per_epoch, per_epoch * cfg.epochs, state.epochs_done, state.initial
    )
    hooks.on_start(start)
    with watched_within_steps(state.model, hooks, setup.forward is state.model):
        while state.epochs_done < cfg.epochs:
            began = time.perf_counter()
            stop = train_one_epoch(state, setup, hooks)
            record = finish_epoch(state, setup, began)
            trained = kernels(state.model, cfg.conv2_filter)
            hooks.on_epoch_end(
                EpochEnd(record, list(state.history), state.initial, trained, state.checkpoint, state.model.state_dict)
            )
            if stop is not None:
                stop.checkpoint = state.checkpoint
                raise stop
    return state.history


@contextmanager
def watched_within_steps(model: nn.Module, hooks: Hooks, eager: bool) -> Iterator[None]:
    """Ask `hooks.within_step` before every layer's forward and as every weight's gradient is computed, so that a
    stop needing no checkpoint ends a step of a minute (224 px, batch 512, on a CPU) within a layer's time. Python
    exceptions raised there unwind the forward pass and autograd's backward alike, before `optimizer.step` (the
    weights are as the previous step left them). Only where the model runs eagerly: a compiled forward would have
    to trace the check (and GPUs, where compiling pays, take a step in well under a second)."""
    if not eager:
        yield
        return

    def check(*_: object) -> None:
        hooks.within_step()

    layers = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_pre_hook(check) for m in layers]
    handles += [p.register_hook(check) for p in model.parameters() if p.requires_grad]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def warm_up(cfg: JobSpec, tuning: Tuning) -> float:
    """A training step and an evaluation batch of each of `cfg`'s shapes (full batches, and the last, smaller ones
    of its training and test sets) on synthetic images, so that what the device chooses or compiles per shape
    (cuDNN's algorithms, torch.compile's code) is ready before a job needs it; these last as long as the process.
    Returns the seconds it took."""
    began = time.perf_counter()
    train_tail = (cfg.train_samples or FULL_TRAIN) % cfg.batch_size
    test_tail = (cfg.test_samples or FULL_TEST) % tuning.eval_batch
    data = make_synthetic(cfg.batch_size + train_tail, tuning.eval_batch + test_tail, cfg.seed)
    fit(cfg.model_copy(update={"epochs": 1}), data, QuietHooks(), tuning=tuning)
    return time.perf_counter() - began
