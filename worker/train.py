"""Training as in the lecture: torchvision's AlexNet with a 10-way head, CIFAR-10 upscaled, NLL on log-softmax.

Knows nothing of HTTP or SQL: `fit` takes numbers and a dataset and reports through `Hooks`, so it runs the
same in the worker, the tests and the benchmark. The dataset lives on the training device as uint8; each
batch is gathered, upscaled and scaled to [0, 1] there in one batched call, or, with `Tuning.upscale_once`,
upscaled once and gathered. `Tuning` holds the other choices that change speed but not results.
"""

import time
from dataclasses import asdict
from functools import partial
from typing import Any

import torch
from torch import nn

from service.spec import JobSpec
from worker.data import FULL_TEST, FULL_TRAIN, Dataset, make_synthetic
from worker.evaluation import evaluate
from worker.hardware import resolve_device, resolve_precision
from worker.hooks import EpochEnd, EpochResult, Hooks, QuietHooks, StartInfo, Stopped
from worker.measures import WEIGHT_LAYERS, layer_weights, relative_change, snapshot
from worker.model import (
    Kernels,
    build_model,
    kernels,
    lecture_loss,
    make_optimizer,
    steps_per_epoch,
)
from worker.tuning import DeviceImages, Tuning, prepare, use_cudnn_benchmark

# ---------------------------------------------------------------- the loop


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


def fit(
    cfg: JobSpec, data: Dataset, hooks: Hooks, resume: dict[str, Any] | None = None, tuning: Tuning | None = None
) -> list[EpochResult]:
    """Train for `cfg.epochs` epochs, continuing from `resume` (a checkpoint dict); return every epoch's result."""
    tuning = tuning or Tuning()
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    bf16 = precision == "bf16"

    model = build_model(device, cfg.seed).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model, device)
    shuffle = torch.Generator(device=device).manual_seed(cfg.seed)
    images = partial(DeviceImages, size=cfg.image_size, channels=tuning.conv1_channels, once=tuning.upscale_once)
    train_x = images(torch.from_numpy(data.train_images).to(device))
    train_y = torch.from_numpy(data.train_labels).to(device)
    test_x = images(torch.from_numpy(data.test_images).to(device))
    test_y = torch.from_numpy(data.test_labels).to(device)

    history: list[EpochResult] = []
    weights = layer_weights(model)
    resume_step, resume_loss, resume_step_losses = 0, 0.0, torch.zeros(0)
    if resume is None:
        initial = kernels(model, cfg.conv2_filter)
        initial_weights = snapshot(weights)
    else:
        # The initial weights are the seed's: rebuilt, not stored, so a checkpoint does not grow by a model.
        initial_weights = snapshot(layer_weights(build_model(device, cfg.seed)))
        model.load_state_dict(resume["model"])  # into the model itself: a compiled wrapper would prefix the keys
        optimizer.load_state_dict(resume["optimizer"])
        initial = Kernels(**{k: v.numpy() for k, v in resume["initial"].items()})
        history = [EpochResult(**r) for r in resume["history"]]
        resume_step, resume_loss = resume.get("step", 0), resume.get("loss_sum", 0.0)
        resume_step_losses = resume.get("step_losses", resume_step_losses)
        _set_rng_state(resume["rng"], shuffle, device)
    # The weights as the current epoch began (a mid-epoch checkpoint carries them; otherwise they are the model's).
    if resume is not None and "previous_weights" in resume:
        previous_weights = [resume["previous_weights"][name].to(device) for name in WEIGHT_LAYERS]
    else:
        previous_weights = snapshot(weights)
    start_epoch = len(history)
    forward = prepare(model, tuning)  # conv1 padded, compiled: as `tuning` says

    n_train = len(train_x)
    per_epoch = steps_per_epoch(n_train, cfg.batch_size)
    step_losses = torch.zeros(per_epoch, device=device)  # filled on the device: no per-step sync
    parameter_count = sum(p.numel() for p in model.parameters())
    hooks.on_start(
        StartInfo(str(device), precision, parameter_count, per_epoch, per_epoch * cfg.epochs, start_epoch, initial)
    )

    def checkpoint(epoch_start_rng: dict[str, Any], step: int, loss_sum: float) -> dict[str, Any]:
        """Everything needed to continue exactly: after `step` steps of epoch len(history) + 1."""
        mid_epoch: dict[str, Any] = {}
        if step:  # what the epoch has measured so far, and what its weights are compared against at its end
            mid_epoch["step_losses"] = step_losses[:step].cpu()
            mid_epoch["previous_weights"] = {n: w.cpu() for n, w in zip(WEIGHT_LAYERS, previous_weights, strict=True)}
        return {
            **mid_epoch,
            "config": cfg.model_dump(mode="json"),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            # The shuffle generator as it was when the epoch began, so the epoch's order can be redrawn;
            # the global generator (dropout) as it is now.
            "rng": {**_rng_state(shuffle, device), "shuffle": epoch_start_rng["shuffle"]},
            "step": step,
            "loss_sum": loss_sum,
            # tensors, not numpy arrays: checkpoints are read back with weights_only=True
            "initial": {k: torch.from_numpy(v) for k, v in asdict(initial).items()},
            "history": [asdict(r) for r in history],
        }

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        began = time.perf_counter()
        forward.train()
        epoch_rng = _rng_state(shuffle, device)
        order = torch.randperm(n_train, device=device, generator=shuffle)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # summed on the device: no per-step sync
        loss_sum += resume_loss
        first_step, resume_step, resume_loss = resume_step, 0, 0.0
        step_losses.zero_()
        step_losses[: len(resume_step_losses)] = resume_step_losses.to(device)
        resume_step_losses = torch.zeros(0)
        done = first_step * cfg.batch_size
        for step in range(first_step, per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x, y = train_x.batch(idx), train_y[idx]
            use_cudnn_benchmark(device, tuning, len(idx), cfg.batch_size)
            loss = train_step(forward, optimizer, x, y, bf16)
            loss_sum += loss.double() * len(idx)
            step_losses[step] = loss
            done += len(idx)
            try:
                hooks.on_step((epoch - 1) * per_epoch + step + 1)
            except Stopped as stop:
                if step + 1 < per_epoch:  # mid-epoch: a hook may save this and continue later
                    stop.checkpoint = partial(checkpoint, epoch_rng, step + 1, loss_sum.item())
                    raise
                # the epoch's steps are all done: finish it (evaluate, report) and then stop
                pending: Stopped | None = stop
                break
        else:
            pending = None
        train_loss = loss_sum.item() / n_train  # the one sync per epoch
        train_seconds = time.perf_counter() - began
        evaluation = evaluate(forward, test_x, test_y, bf16, tuning, cfg.batch_size)
        change = torch.stack([relative_change(weights, initial_weights), relative_change(weights, previous_weights)])
        from_initial, from_previous = change.tolist()
        for kept, now in zip(previous_weights, weights, strict=True):
            kept.copy_(now.detach())
        result = EpochResult(
            epoch=epoch,
            train_loss=train_loss,
            test_loss=evaluation.loss,
            test_accuracy=evaluation.accuracy,
            seconds=time.perf_counter() - began,
            images_per_second=(done - first_step * cfg.batch_size) / train_seconds,
            step_losses=step_losses.tolist(),
            confusion=evaluation.confusion,
            classes=list(data.classes),
            mistakes=evaluation.mistakes,
            weight_change={
                name: {"from_initial": a, "from_previous": b}
                for name, a, b in zip(WEIGHT_LAYERS, from_initial, from_previous, strict=True)
            },
        )
        history.append(result)
        end_rng = _rng_state(shuffle, device)
        hooks.on_epoch_end(
            EpochEnd(
                result=result,
                history=list(history),
                initial=initial,
                trained=kernels(model, cfg.conv2_filter),
                checkpoint=partial(checkpoint, end_rng, 0, 0.0),
                state_dict=model.state_dict,
            )
        )
        if pending is not None:
            pending.checkpoint = partial(checkpoint, end_rng, 0, 0.0)
            raise pending
    return history


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


def _rng_state(shuffle: torch.Generator, device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], shuffle: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
