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

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from worker.model import pad_conv1

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
