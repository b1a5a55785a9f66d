"""Training as in the lecture: torchvision's AlexNet with a 10-way head, CIFAR-10 upscaled, NLL on log-softmax.

Knows nothing of HTTP or SQL: `fit` takes numbers and a dataset and reports through `Hooks`, so it runs the
same in the worker, the tests and the benchmark. The dataset lives on the training device as uint8; each
batch is gathered, upscaled and scaled to [0, 1] there in one batched call.
"""

import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
import torchvision
from torch import nn

from worker.data import Dataset

NUM_CLASSES = 10
# Test-set batches are inference only (no activations kept for backward), so they can be much larger.
EVAL_BATCH = 1024


class TrainingError(Exception):
    """A job cannot run as specified (e.g. CUDA asked for where there is none); the message is for users."""


class Stopped(Exception):
    """Raised by a hook to stop training between steps (cancel, lease lost, shutdown, timeout).

    `fit` re-raises it with `checkpoint` set: a callable that captures the state at the stopping point.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.checkpoint: Callable[[], dict[str, Any]] | None = None


@dataclass(frozen=True)
class TrainConfig:
    """The training part of a job spec."""

    epochs: int = 5
    batch_size: int = 512
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-4
    image_size: int = 224
    seed: int = 0
    device: Literal["auto", "cuda", "cpu"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    conv2_filter: int = 0


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float
    images_per_second: float


@dataclass
class Kernels:
    """The weights drawn as pictures: conv1's 64 kernels and the 64 input slices of one conv2 filter."""

    conv1: np.ndarray  # (64, 3, 11, 11)
    conv2: np.ndarray  # (64, 5, 5)


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


# ---------------------------------------------------------------- building blocks


def resolve_device(request: str) -> torch.device:
    """`auto` → CUDA when there is one; `cuda` without one is a TrainingError."""
    if request == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was requested but this worker has no CUDA GPU; use 'auto' or 'cpu'")
    if request in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


# oneDNN's instruction-set levels, lowest first (its ONEDNN_MAX_CPU_ISA names); bf16 arithmetic is native from
# AVX512_CORE_BF16 on. Below that oneDNN emulates it, about 30× slower than fp32.
_ONEDNN_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX10_1_512",
    "AVX512_CORE_FP16",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX512_CORE_AMX_FP16",
)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX, and oneDNN allowed to use them: bf16 matrix work is native, not emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()  # an operator's cap on what oneDNN may use
    if cap in _ONEDNN_ISAS:
        return _ONEDNN_ISAS.index(cap) >= _ONEDNN_ISAS.index("AVX512_CORE_BF16")
    return True


def bf16_is_native(device: torch.device) -> bool:
    """Whether bf16 autocast on `device` runs natively (fast) rather than emulated (about 30× slower on a CPU)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_fast_bf16()


def resolve_precision(request: str, device: torch.device) -> str:
    """`auto` → bf16 autocast where it is native (CUDA, CPUs with AVX-512 BF16 or AMX), fp32 elsewhere."""
    if request != "auto":
        return request
    return "bf16" if bf16_is_native(device) else "fp32"


def check_precision(request: str, device: torch.device) -> None:
    """A job may not ask for bf16 where it is emulated: that is only ever slower, never better, than fp32."""
    if request == "bf16" and not bf16_is_native(device):
        raise TrainingError(
            f"precision 'bf16' was requested but this worker's {device.type.upper()} has no native bf16 "
            "(no AVX-512 BF16 or AMX): emulated bf16 trains about 30× slower than fp32. "
            "Use 'auto' or 'fp32', or run it where a worker has native bf16."
        )


def build_model(device: torch.device, seed: int) -> nn.Module:
    """torchvision's AlexNet (random init, seeded) with its last layer replaced by Linear(4096, 10)."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = torchvision.models.alexnet(weights=None)
        model.classifier[6] = nn.Linear(4096, NUM_CLASSES)
    return model


def upscale(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) → float (N, 3, size, size) in [0, 1], as PIL's bilinear Resize + ToTensor give.

    PIL enlarges in two passes, rows then columns, rounding half up to whole levels after each. At
    whole-number scales (64, 96, …, 224 = 7 × 32) doing the same reproduces its pixels exactly, so the
    lecture's pipeline and this one see the same images. At other scales the two roundings can each land
    on the other side of a tie from PIL's fixed-point arithmetic, so one pass rounded once is used, which
    keeps every pixel within one level of PIL's. Each pass is one batched call on the training device.
    """
    x = images.float()
    if size % images.shape[-1] == 0:
        x = F.interpolate(x, size=(images.shape[-2], size), mode="bilinear", align_corners=False).add_(0.5).floor_()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).add_(0.5).floor_()
    return x.div_(255)  # a division, as ToTensor does: multiplying by 1/255 can differ in the last bit


def lecture_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """NLL on log-softmax, computed in fp32 whatever the autocast precision."""
    return F.nll_loss(F.log_softmax(logits.float(), dim=1), labels, reduction=reduction)


def make_optimizer(cfg: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum 0.9; the fused single-kernel variants, which exist on CUDA and CPU."""
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, fused=True)
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=0.9, fused=True)


def kernels(model: nn.Module, conv2_filter: int) -> Kernels:
    """Copies of conv1's weights and one conv2 filter's, as float32 numpy arrays."""
    conv1_layer, conv2_layer = model.get_submodule("features.0"), model.get_submodule("features.3")
    assert isinstance(conv1_layer, nn.Conv2d) and isinstance(conv2_layer, nn.Conv2d)
    conv1 = conv1_layer.weight.detach().float().cpu().numpy().copy()
    conv2 = conv2_layer.weight[conv2_filter].detach().float().cpu().numpy().copy()
    return Kernels(conv1=conv1, conv2=conv2)


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Like a DataLoader without drop_last: the last, smaller batch counts too."""
    return math.ceil(train_size / batch_size)


# ---------------------------------------------------------------- the loop


@torch.inference_mode()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, size: int, bf16: bool
) -> tuple[float, float]:
    """Mean test loss and accuracy (0–1) over the whole test set."""
    model.eval()
    loss_sum = torch.zeros((), device=images.device, dtype=torch.float64)
    correct = torch.zeros((), device=images.device, dtype=torch.int64)
    for start in range(0, len(images), EVAL_BATCH):
        x = upscale(images[start : start + EVAL_BATCH], size).contiguous(memory_format=torch.channels_last)
        y = labels[start : start + EVAL_BATCH]
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss_sum += lecture_loss(logits, y, reduction="sum").double()
        correct += (logits.argmax(dim=1) == y).sum()
    n = max(1, len(images))
    return loss_sum.item() / n, correct.item() / n


def fit(cfg: TrainConfig, data: Dataset, hooks: Hooks, resume: dict[str, Any] | None = None) -> list[EpochResult]:
    """Train for `cfg.epochs` epochs, continuing from `resume` (a checkpoint dict); return every epoch's result."""
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    bf16 = precision == "bf16"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels once

    model = build_model(device, cfg.seed).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model, device)
    shuffle = torch.Generator(device=device).manual_seed(cfg.seed)
    train_x = torch.from_numpy(data.train_images).to(device)
    train_y = torch.from_numpy(data.train_labels).to(device)
    test_x = torch.from_numpy(data.test_images).to(device)
    test_y = torch.from_numpy(data.test_labels).to(device)

    history: list[EpochResult] = []
    resume_step, resume_loss = 0, 0.0
    if resume is None:
        initial = kernels(model, cfg.conv2_filter)
    else:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        initial = Kernels(**{k: v.numpy() for k, v in resume["initial"].items()})
        history = [EpochResult(**r) for r in resume["history"]]
        resume_step, resume_loss = resume.get("step", 0), resume.get("loss_sum", 0.0)
        _set_rng_state(resume["rng"], shuffle, device)
    start_epoch = len(history)

    n_train = len(train_x)
    per_epoch = steps_per_epoch(n_train, cfg.batch_size)
    parameter_count = sum(p.numel() for p in model.parameters())
    hooks.on_start(
        StartInfo(str(device), precision, parameter_count, per_epoch, per_epoch * cfg.epochs, start_epoch, initial)
    )

    def checkpoint(epoch_start_rng: dict[str, Any], step: int, loss_sum: float) -> dict[str, Any]:
        """Everything needed to continue exactly: after `step` steps of epoch len(history) + 1."""
        return {
            "config": asdict(cfg),
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
        model.train()
        epoch_rng = _rng_state(shuffle, device)
        order = torch.randperm(n_train, device=device, generator=shuffle)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # summed on the device: no per-step sync
        loss_sum += resume_loss
        first_step, resume_step, resume_loss = resume_step, 0, 0.0
        done = first_step * cfg.batch_size
        for step in range(first_step, per_epoch):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = upscale(train_x[idx], cfg.image_size).contiguous(memory_format=torch.channels_last)
            y = train_y[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = lecture_loss(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(idx)
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
        test_loss, test_accuracy = evaluate(model, test_x, test_y, cfg.image_size, bf16)
        result = EpochResult(
            epoch=epoch,
            train_loss=train_loss,
            test_loss=test_loss,
            test_accuracy=test_accuracy,
            seconds=time.perf_counter() - began,
            images_per_second=(done - first_step * cfg.batch_size) / train_seconds,
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
