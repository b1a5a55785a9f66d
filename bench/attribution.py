"""The parts of a training step, the profiler ranges that mark them, and the attribution of a profile's events to them.

Forward time is found by ranges (`record_function`) that forward hooks open and close around each layer
(`layer_ranges`), and that `marked_step` opens around the batch, the loss and the optimizer. Backward time is found
by autograd's sequence numbers: each backward node's event carries the number of the forward op that created it,
and that op lies inside one layer's range. Each unit of time is counted once, for the innermost range or backward
node that owns it: on CUDA each kernel (through the op that launched it), on the CPU each op's self time.
"""

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import DeviceType, record_function

from worker.batches import DeviceImages
from worker.measures import LAYER_NAMES
from worker.model import lecture_loss

LAYERS = LAYER_NAMES  # conv1…conv5, fc1…fc3, as the pictures name them
BATCH = "batch preparation"  # DeviceImages.batch: the gather, upscale and scale, and the labels' gather
ELEMENTWISE = "elementwise and pooling"  # ReLU, max-pooling, dropout, adaptive average pooling, flatten
LOSS, OPTIMIZER, OTHER = "loss", "optimizer", "other"
COMPILED = "compiled model"  # under torch.compile: its kernels span layers, so the model is one part
SPLIT = (*LAYERS.values(), ELEMENTWISE, COMPILED, LOSS)  # the parts with a forward and a backward
STEP = "step"  # the range around a whole step: what no part claims is `other`
EVALUATE = "autograd::engine::evaluate_function: "  # the engine's event around each backward node


def _label(part: str) -> str:
    return f"bench.profile: {part}"


RANGES = {_label(p): p for p in (*SPLIT, BATCH, OPTIMIZER)} | {_label(STEP): OTHER}

Contents = dict[tuple[str, str], dict[str, float]]  # (part, "forward" | "backward" | "total") → name → ms/step


@dataclass(frozen=True)
class Op:
    """A kernel (CUDA) or op (CPU) by its self time."""

    name: str
    calls: float  # per step
    ms: float  # per step


# ---------------------------------------------------------------- the step, marked


@contextmanager
def layer_ranges(model: nn.Module) -> Iterator[None]:
    """A profiler range around every leaf module's forward: its layer's, or `elementwise and pooling`."""
    opened: list[record_function] = []

    def enter(label: str, module: nn.Module, args: Any) -> None:
        opened.append(record_function(label))
        opened[-1].__enter__()

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        opened.pop().__exit__(None, None, None)

    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            label = _label(LAYERS.get(name, ELEMENTWISE))
            handles += [module.register_forward_pre_hook(partial(enter, label)), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def marked_step(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: DeviceImages,
    labels: torch.Tensor,
    index: torch.Tensor,
    bf16: bool,
    model_part: str = ELEMENTWISE,
) -> None:
    """`fit`'s batch and `worker.train.train_step`, the same calls in the same order, inside profiler ranges.

    What the model runs outside its layers (flatten) counts as `model_part`."""
    with record_function(_label(STEP)):
        with record_function(_label(BATCH)):
            x, y = images.batch(index), labels[index]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16), record_function(_label(model_part)):
            logits = forward(x)
        with record_function(_label(LOSS)):
            loss = lecture_loss(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with record_function(_label(OPTIMIZER)):
            optimizer.step()


# ---------------------------------------------------------------- attribution


class _Owners:
    """Which part, and which phase of it, owns each CPU-side event of a profile."""

    def __init__(self, events: list[FunctionEvent]) -> None:
        self.anchors: dict[int, FunctionEvent | None] = {}
        # The forward op that created backward node `n` is the last op to see sequence number n: the number
        # moves on when a node is made, and ops that make none (views, ops on tensors without grad) share it.
        created: dict[int, tuple[float, str]] = {}
        for e in events:
            anchor = self.anchor(e)
            if e.sequence_nr >= 0 and not (anchor is not None and anchor.name.startswith(EVALUATE)):
                part = RANGES[anchor.name] if anchor is not None else OTHER
                if e.sequence_nr not in created or created[e.sequence_nr][0] <= e.time_range.start:
                    created[e.sequence_nr] = (e.time_range.start, part)
        self.backward: dict[int, str] = {}
        previous: dict[int, str] = {}  # per thread, the part of the backward node run last
        for e in sorted((e for e in events if e.name.startswith(EVALUATE)), key=lambda e: e.time_range.start):
            if e.sequence_nr in created:
                part = created[e.sequence_nr][1]
            elif e.name.endswith("AccumulateGrad") and e.thread in previous:
                # A parameter's gradient is stored by an AccumulateGrad node, which has no forward op. The engine
                # runs it first thing once the node that computed that gradient has run, on the same thread.
                part = previous[e.thread]
            else:
                part = OTHER
            self.backward[id(e)] = previous[e.thread] = part

    def anchor(self, e: FunctionEvent) -> FunctionEvent | None:
        """The innermost of `e` and its parents that is one of our ranges or a backward node."""
        if id(e) not in self.anchors:
            if e.name in RANGES or e.name.startswith(EVALUATE):
                self.anchors[id(e)] = e
            else:
                self.anchors[id(e)] = None if e.cpu_parent is None else self.anchor(e.cpu_parent)
        return self.anchors[id(e)]

    def owner(self, e: FunctionEvent) -> tuple[str, str]:
        anchor = self.anchor(e)
        if anchor is None:
            return OTHER, "total"
        if anchor.name.startswith(EVALUATE):
            part, phase = self.backward[id(anchor)], "backward"
        else:
            part, phase = RANGES[anchor.name], "forward"
        return (part, phase) if part in SPLIT else (part, "total")


def _is_annotation(e: FunctionEvent) -> bool:
    """A `record_function` range, ours or torch's own (`Optimizer.step#Adam.step`), or its mirror on the GPU."""
    return bool(getattr(e, "is_user_annotation", False))  # the attribute is recent: absent, names still tell


def attribute(
    events: list[FunctionEvent], cuda: bool, steps: int, top: int
) -> tuple[Contents, float, list[Op], list[str]]:
    """What each (part, phase) holds, the profile's whole time, the top kernels or ops (all per step), and notes."""
    cpu = [e for e in events if e.device_type == DeviceType.CPU and not e.is_async]
    # Ranges are mirrored on the GPU's timeline (gpu_user_annotation): spans, not work, wherever they turn up.
    annotations = set(RANGES) | {e.name for e in cpu if _is_annotation(e)}
    owners = _Owners(cpu)
    usage: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for e in cpu:
        key = owners.owner(e)
        if cuda:  # the kernels this op launched itself (its children's are theirs)
            for kernel in e.kernels:
                if kernel.name not in annotations:
                    usage[key][kernel.name] += kernel.duration
        else:
            usage[key][e.name] += e.self_cpu_time_total
    if cuda:
        device = [e for e in events if e.device_type != DeviceType.CPU and not _is_annotation(e)]
        work = [(e.name, e.time_range.elapsed_us()) for e in device if e.name not in annotations]
        profiled = sum(us for _, us in work)
    else:
        work = [(e.name, e.self_cpu_time_total) for e in cpu if e.name not in annotations]
        profiled = sum(e.cpu_time_total for e in cpu if e.cpu_parent is None)  # top-level events, ranges included
    spent, calls = Counter[str](), Counter[str]()
    for name, us in work:
        spent[name] += us
        calls[name] += 1
    notes = []
    if cuda:
        unlinked = profiled - sum(sum(c.values()) for c in usage.values())
        if not profiled:
            notes.append("No kernels were recorded: the profiler could not trace the GPU (CUPTI).")
        elif unlinked < -0.001 * profiled:
            notes.append(f"{-unlinked / steps / 1000:.3f} ms/step of kernel time was attributed twice: a bug here.")
        elif unlinked > 0:
            usage[OTHER, "total"]["(kernels that no op launched)"] += unlinked
    ops = [Op(name, calls[name] / steps, us / steps / 1000) for name, us in spent.most_common(top)]
    contents = {key: {name: us / steps / 1000 for name, us in c.most_common()} for key, c in usage.items()}
    return contents, profiled / steps / 1000, ops, notes
