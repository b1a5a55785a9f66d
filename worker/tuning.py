"""How the engine runs a job's steps: choices that change its speed on a device, not what it learns.

Each choice is off by default and is turned on only once measured to help a whole job end to end on the
device it is for, compile and autotuning time included; `bench/NOTES.md` keeps each prediction and
measurement. An operator can set them for a worker (`ENGINE_TUNING`, e.g. `upscale_once=1,conv1_channels=4`)
and the benchmarks try them one at a time (`python -m bench.tuning`).

- `upscale_once`: the set is upscaled once, when training starts, and kept on the device as uint8 (the upscale
  rounds to whole levels, so nothing is lost), instead of being upscaled batch by batch. Only where it fits
  in half the device's free memory (7.5 GB for CIFAR-10's 50,000 training images at 224×224).
- `conv1_channels`: conv1's input padded with zero channels from 3 to 4 or 8, and its weight with zeros to
  match (the weight itself stays 3-channel), for shapes that tensor cores take better. Same result.
- `compile`: the model under `torch.compile` in that mode ("reduce-overhead" adds CUDA graphs).
- `eval_batch`: test images per evaluation batch (inference keeps no activations, so it can be larger).
- `cudnn_benchmark`: which batch shapes cuDNN times its algorithms on: `all`, `train` (full training
  batches only; the last, smaller batch and evaluation take its heuristics unless they share that shape)
  or `off`. Each new shape costs a round of trials, which is most of a cold first epoch on a GPU.
- `warm_up`: a worker runs a training step and an evaluation batch of each of the default job's batch shapes
  (full batches, and the last ones of CIFAR-10's 50,000 and 10,000) when it starts, so that its first job does not
  pay for autotuning or compiling (their results live as long as the worker's process).
"""

import logging
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from worker.model import pad_conv1, upscale, upscale_levels

log = logging.getLogger("worker")

CompileMode = Literal["none", "default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune"]


class TuningError(ValueError):
    """ENGINE_TUNING (or a benchmark's --tuning) does not parse; the message says what is wrong."""


class Tuning(BaseModel):
    """The engine's speed choices (see the module's docstring); the defaults are today's measured best."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    upscale_once: bool = False
    conv1_channels: Literal[3, 4, 8] = 3
    compile: CompileMode = "none"
    eval_batch: int = Field(1024, ge=1, le=65536)
    cudnn_benchmark: Literal["all", "train", "off"] = "all"
    warm_up: bool = False

    @classmethod
    def parse(cls, text: str) -> "Tuning":
        """`name=value,name=value` (spaces allowed; `name` alone means `name=1`); empty: the defaults."""
        values: dict[str, str | int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            value = value.strip() or "1"
            values[name.strip()] = int(value) if value.isdigit() else value  # numbers as numbers, for the Literals
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise TuningError(f"ENGINE_TUNING={text!r}: {problems}") from None

    def describe(self) -> str:
        """The choices that differ from the defaults, as `parse` reads them; "defaults" when none do."""
        changed = self.model_dump(exclude_defaults=True)
        return ",".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in changed.items()) or "defaults"


# ---------------------------------------------------------------- conv1's input


class DeviceImages:
    """uint8 (N, 3, 32, 32) images on the training device, served a batch at a time as conv1 takes them:
    upscaled to `size`, scaled to [0, 1], channels_last, with zero channels up to `channels`.

    Upscaled once (`once`), they are kept as uint8 (N, size, size, channels) and a batch is a gather and a
    division; otherwise each batch is upscaled when asked for. Either way a batch holds the same values.
    """

    def __init__(self, images: torch.Tensor, size: int, channels: int = 3, once: bool = False) -> None:
        self.source, self.size, self.channels = images, size, channels
        self.stored: torch.Tensor | None = None
        if once:
            need = len(images) * size * size * channels
            free = free_memory(images.device)
            if free is not None and need > free // 2:
                log.info(
                    "upscale_once: %d images at %d px need %.1f GB, more than half the %.1f GB free on %s; "
                    "upscaling batch by batch instead",
                    *(len(images), size, need / 1e9, free / 1e9, images.device),
                )
            else:
                self.stored = self._upscale_all()

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, index: torch.Tensor | slice) -> torch.Tensor:
        """The images at `index` (a tensor of indices or a slice), as float32 (B, channels, size, size)."""
        if self.stored is not None:
            # (B, size, size, C) read as (B, C, size, size): channels_last without a copy
            return self.stored[index].permute(0, 3, 1, 2).div(255)  # uint8 / 255 → float32 in one pass
        x = upscale(self.source[index], self.size)
        if self.channels > x.shape[1]:
            x = F.pad(x, (0, 0, 0, 0, 0, self.channels - x.shape[1]))
        return x.contiguous(memory_format=torch.channels_last)

    def _upscale_all(self, chunk: int = 1024) -> torch.Tensor:
        n, device = len(self.source), self.source.device
        stored = torch.zeros(n, self.size, self.size, self.channels, dtype=torch.uint8, device=device)
        for start in range(0, n, chunk):
            levels = upscale_levels(self.source[start : start + chunk], self.size)  # whole numbers 0–255
            stored[start : start + chunk, :, :, :3] = levels.permute(0, 2, 3, 1).to(torch.uint8)
        return stored


def free_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on `device`: CUDA's free memory, or the host's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- the model and cuDNN


def prepare(model: nn.Module, tuning: Tuning) -> nn.Module:
    """`model` with conv1 taking `conv1_channels` (in place: same parameters, same state_dict), and the callable
    that runs it: the model itself, or its `torch.compile`d wrapper. Load weights into `model`, not the wrapper."""
    if tuning.conv1_channels != 3:
        pad_conv1(model)
    if tuning.compile == "none":
        return model
    compiled: nn.Module = torch.compile(model, mode=tuning.compile)  # type: ignore[assignment]
    return compiled


def use_cudnn_benchmark(device: torch.device, tuning: Tuning, batch: int, train_batch: int) -> None:
    """Whether cuDNN times its algorithms for the batch about to run (see `cudnn_benchmark`)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = tuning.cudnn_benchmark == "all" or (
            tuning.cudnn_benchmark == "train" and batch == train_batch
        )
