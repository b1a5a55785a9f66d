"""`python -m bench.profile`: where one training step of the engine spends its time, layer by layer.

The step is the engine's, built as `fit` builds it (`prepare`d model, fused optimizer, `DeviceImages`, bf16
autocast where the precision is bf16), with `worker.train.train_step`'s calls made inside profiler ranges
(`marked_step`; a test holds it to `train_step`'s result). After the warm-up, steps are timed without the
profiler, then as many are profiled. Forward time is found by ranges (`record_function`) that forward hooks
open and close around each layer, and that the step opens around the batch, the loss and the optimizer.
Backward time is found by autograd's sequence numbers: each backward node's event carries the number of the
forward op that created it, and that op lies inside one layer's range. Each unit of time is counted once, for
the innermost range or backward node that owns it: on CUDA each kernel (through the op that launched it), on
the CPU each op's self time. Full backward hooks on modules are not used: AlexNet's in-place ReLU breaks them.
"""

import argparse
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import DeviceType, ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from bench.__main__ import machine
from bench.measure import peak_tflops, sync
from service.spec import JobSpec
from worker.data import make_synthetic
from worker.hardware import TrainingError, resolve_device, resolve_precision
from worker.model import build_model, lecture_loss, make_optimizer, pad_conv1
from worker.tuning import DeviceImages, Tuning, TuningError, prepare, use_cudnn_benchmark

# A GPU step is milliseconds, so more of them at the lecture's shapes; a CPU step is seconds, so few and small.
CUDA_BATCH, CUDA_SIZE, CUDA_WARMUP, CUDA_STEPS = 512, 224, 5, 10
CPU_BATCH, CPU_SIZE, CPU_WARMUP, CPU_STEPS = 32, 128, 1, 2
TOP = 15

LAYERS = {
    "features.0": "conv1",
    "features.3": "conv2",
    "features.6": "conv3",
    "features.8": "conv4",
    "features.10": "conv5",
    "classifier.1": "fc6",
    "classifier.4": "fc7",
    "classifier.6": "fc8",
}
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
MAX_NAME = 80  # kernel names run to hundreds of characters of template arguments

Contents = dict[tuple[str, str], dict[str, float]]  # (part, "forward" | "backward" | "total") → name → ms/step


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Row:
    """One part of the step, in ms per step; forward and backward are None for a part that has no such split."""

    part: str
    forward_ms: float | None
    backward_ms: float | None
    total_ms: float
    flops: int | None = None  # per step, forward and backward (FlopCounterMode); None where nothing is counted


@dataclass(frozen=True)
class Op:
    """A kernel (CUDA) or op (CPU) by its self time."""

    name: str
    calls: float  # per step
    ms: float  # per step


@dataclass(frozen=True)
class Breakdown:
    device: torch.device
    precision: str
    tuning: str
    batch_size: int
    image_size: int
    warmup: int
    steps: int
    wall_ms: float  # per step, timed without the profiler, the device synchronised at both ends of the steps
    profiled_wall_ms: float  # the same, for the profiled steps
    profiled_ms: float  # per step: all kernel time (CUDA), or all CPU time in the profiler's events
    rows: list[Row]
    top: list[Op]
    contents: Contents = field(default_factory=dict)  # the kernels or ops that make up each row
    notes: list[str] = field(default_factory=list)

    @property
    def basis(self) -> str:
        return "device (kernel) time" if self.device.type == "cuda" else "CPU time"

    @property
    def total_ms(self) -> float:
        return sum(r.total_ms for r in self.rows)

    def share(self, ms: float) -> float:
        return ms / self.total_ms if self.total_ms else 0.0


# ---------------------------------------------------------------- the step, marked


@contextmanager
def _layer_ranges(model: nn.Module) -> Iterator[None]:
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


def part_flops(batch_size: int, image_size: int, tuning: Tuning) -> dict[str, tuple[int, int]]:
    """Each layer's (forward, backward) FLOPs for one step, counted on the meta device, where it is instant."""
    meta = torch.device("meta")
    model = build_model(meta, seed=0).to(memory_format=torch.channels_last)
    if tuning.conv1_channels != 3:
        pad_conv1(model)
    x = torch.zeros(batch_size, tuning.conv1_channels, image_size, image_size, device=meta)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.zeros(batch_size, dtype=torch.int64, device=meta)
    with FlopCounterMode(display=False) as forward:
        model(x)
    with FlopCounterMode(display=False) as whole:
        lecture_loss(model(x), y).backward()
    root = type(model).__name__  # FlopCounterMode names modules by the root's class and their path
    out = {}
    for name, part in LAYERS.items():
        fw = sum(forward.get_flop_counts().get(f"{root}.{name}", {}).values())
        out[part] = (fw, sum(whole.get_flop_counts().get(f"{root}.{name}", {}).values()) - fw)
    return out


# ---------------------------------------------------------------- the profile


def profile_step(
    device: torch.device,
    precision: str,
    batch_size: int,
    image_size: int,
    warmup: int,
    steps: int,
    tuning: Tuning | None = None,
    top: int = TOP,
    seed: int = 0,
    trace: Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Breakdown:
    """Run `warmup` engine steps, time `steps` more, then profile `steps` more and say where their time went."""
    tuning = tuning or Tuning()
    cfg = JobSpec(batch_size=batch_size, image_size=image_size, seed=seed)  # the default job's optimizer
    bf16 = precision == "bf16"
    model = build_model(device, seed).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg, model, device)
    forward = prepare(model, tuning)
    forward.train()
    data = make_synthetic(batch_size * (warmup + 2 * steps), 1, seed)
    source = torch.from_numpy(data.train_images).to(device)
    images = DeviceImages(source, image_size, tuning.conv1_channels, once=tuning.upscale_once)
    labels = torch.from_numpy(data.train_labels).to(device)
    order = torch.randperm(len(labels), device=device, generator=torch.Generator(device=device).manual_seed(seed))
    batches = iter(order.split(batch_size))
    # torch.compile's graph would break at every hook: compiled, the model is profiled as one part.
    model_part = COMPILED if tuning.compile != "none" else ELEMENTWISE
    cuda = device.type == "cuda"

    def run(what: str, n: int) -> float:
        """`n` steps, the device synchronised at both ends (and after each warm-up step); their seconds."""
        sync(device)
        began = last = time.perf_counter()
        for k in range(1, n + 1):
            index = next(batches)
            use_cudnn_benchmark(device, tuning, len(index), batch_size)
            marked_step(forward, optimizer, images, labels, index, bf16, model_part)
            if what == "warm-up":
                sync(device)
            now = time.perf_counter()
            queued = cuda and what != "warm-up"  # not waited for: the time it took to queue the step
            progress(f"{what} step {k}/{n}: {now - last:.3f} s" + (" (queued)" if queued else ""))
            last = now
        sync(device)
        return time.perf_counter() - began

    run("warm-up", warmup)
    # Timed first without the profiler, whose per-op work on the CPU can leave the GPU waiting.
    wall = run("timed", steps)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with _layer_ranges(model) if model_part == ELEMENTWISE else nullcontext(), profile(activities=activities) as prof:
        profiled_wall = run("profiled", steps)
    progress(
        f"{wall / steps:.3f} s/step, {profiled_wall / steps:.3f} s/step under the profiler; attributing its events"
    )
    if trace is not None:
        prof.export_chrome_trace(str(trace))
        progress(f"trace written to {trace}")
    contents, profiled_ms, ops, notes = attribute(list(prof.events()), cuda, steps, top)
    if model_part == COMPILED:
        notes.append("Compiled, the model runs kernels fused across layers: its time is one part, not one per layer.")
    return Breakdown(
        device=device,
        precision=precision,
        tuning=tuning.describe(),
        batch_size=batch_size,
        image_size=image_size,
        warmup=warmup,
        steps=steps,
        wall_ms=wall / steps * 1000,
        profiled_wall_ms=profiled_wall / steps * 1000,
        profiled_ms=profiled_ms,
        rows=_rows(contents, part_flops(batch_size, image_size, tuning), model_part),
        top=ops,
        contents=contents,
        notes=notes,
    )


def _rows(contents: Contents, flops: dict[str, tuple[int, int]], model_part: str) -> list[Row]:
    def ms(part: str, phase: str) -> float:
        return sum(contents.get((part, phase), {}).values())

    counted = {part: sum(f) for part, f in flops.items()}
    counted[COMPILED] = sum(counted.values())  # FlopCounterMode counts convolutions and matmuls only
    rows = [Row(BATCH, None, None, ms(BATCH, "total"))]
    model = [*LAYERS.values(), ELEMENTWISE] if model_part == ELEMENTWISE else [COMPILED]
    for part in [*model, LOSS]:
        fw, bw = ms(part, "forward"), ms(part, "backward")
        rows.append(Row(part, fw, bw, fw + bw, counted.get(part)))
    rows += [Row(p, None, None, ms(p, "total")) for p in (OPTIMIZER, OTHER)]
    return rows


# ---------------------------------------------------------------- the report


def _cell(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.3f}"


def _name(name: str) -> str:
    name = name.replace("|", "\\|")  # a markdown table's cell separator
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def parts_table(b: Breakdown) -> str:
    """The step's time by part, in model order, with each layer's TFLOP/s (and its share of the device's peak)."""
    peak = peak_tflops(b.device, b.precision)
    lines = [
        "| part | forward ms/step | backward ms/step | total ms/step | share | GFLOP/step | TFLOP/s |"
        + (" of peak |" if peak else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if peak else ""),
    ]

    def speed(flops: int | None, ms: float) -> list[str]:
        if not flops or ms <= 0:
            return ["", ""] + ([""] if peak else [])
        tflops = flops / (ms / 1000) / 1e12
        return [f"{flops / 1e9:.2f}", f"{tflops:.3g}"] + ([f"{tflops / peak:.1%}"] if peak else [])

    for r in b.rows:
        cells = [r.part, _cell(r.forward_ms), _cell(r.backward_ms), _cell(r.total_ms), f"{b.share(r.total_ms):.1%}"]
        lines.append("| " + " | ".join(cells + speed(r.flops, r.total_ms)) + " |")
    forward = sum(r.forward_ms or 0.0 for r in b.rows)
    backward = sum(r.backward_ms or 0.0 for r in b.rows)
    flops = sum(r.flops or 0 for r in b.rows) or None
    cells = ["**total**", _cell(forward), _cell(backward), f"**{b.total_ms:.3f}**", "100.0%"]
    lines.append("| " + " | ".join(cells + speed(flops, b.total_ms)) + " |")
    return "\n".join(lines)


def top_table(b: Breakdown) -> str:
    """The kernels (CUDA) or ops (CPU) with the most self time."""
    what = "kernel" if b.device.type == "cuda" else "op"
    lines = [f"| {what} | calls/step | ms/step | share |", "|---|---:|---:|---:|"]
    for op in b.top:
        lines.append(f"| `{_name(op.name)}` | {op.calls:g} | {op.ms:.3f} | {b.share(op.ms):.1%} |")
    return "\n".join(lines)


def summary(b: Breakdown) -> str:
    """The wall time beside the profile's, what `other` holds, and anything found wrong."""
    if b.device.type == "cuda":  # the GPU's work against the step's unprofiled wall time
        covered = f"so the GPU was busy {b.profiled_ms / b.wall_ms:.0%} of a step"
    else:  # CPU time can only be compared with the profiled steps' own wall time
        covered = f"{b.profiled_ms / b.profiled_wall_ms:.0%} of the profiled steps' wall time"
    other = contents_line(b, (OTHER, "total"))
    lines = [
        f"Wall time {b.wall_ms:.3f} ms/step (synchronised; {b.profiled_wall_ms:.3f} under the profiler). "
        f"{b.basis[0].upper()}{b.basis[1:]} in the profile {b.profiled_ms:.3f} ms/step, {covered}; the parts add up to "
        f"{b.total_ms:.3f} ms/step.",
        *([f"`other` is mostly {other}."] if other else []),
        *b.notes,
    ]
    return "\n".join(lines)


def contents_line(b: Breakdown, key: tuple[str, str], n: int = 4) -> str:
    """The few kernels or ops that make up most of one part's time, with their ms per step."""
    items = list(b.contents.get(key, {}).items())[:n]
    return ", ".join(f"`{_name(name)}` {ms:.3f} ms" for name, ms in items)


def setup_line(b: Breakdown) -> str:
    return (
        f"{b.device.type}, {b.precision}, batch {b.batch_size}, {b.image_size}×{b.image_size}, tuning "
        f"{b.tuning}; {b.warmup} warm-up step{'s' * (b.warmup != 1)}, {b.steps} timed without the profiler, "
        f"then {b.steps} profiled; times are {b.basis} per step"
    )


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--batch-size", type=int, help=f"images per step (default {CUDA_BATCH} CUDA, {CPU_BATCH} CPU)")
    p.add_argument(
        "--image-size", type=int, help=f"side of the upscaled images (default {CUDA_SIZE} CUDA, {CPU_SIZE} CPU)"
    )
    p.add_argument("--steps", type=int, help=f"profiled steps (default {CUDA_STEPS} CUDA, {CPU_STEPS} CPU)")
    p.add_argument("--warmup", type=int, help=f"untimed steps first (default {CUDA_WARMUP} CUDA, {CPU_WARMUP} CPU)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--tuning", default="", help="the engine's speed choices, as ENGINE_TUNING takes them")
    p.add_argument("--top", type=int, default=TOP, help="kernels (CUDA) or ops (CPU) to list by self time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trace", type=Path, help="also write a Chrome trace (chrome://tracing, Perfetto) here")
    args = p.parse_args()
    try:
        args.device = resolve_device(args.device)
        args.tuning = Tuning.parse(args.tuning)
    except (TrainingError, TuningError) as exc:
        p.error(str(exc))
    cuda = args.device.type == "cuda"
    args.batch_size = args.batch_size or (CUDA_BATCH if cuda else CPU_BATCH)
    args.image_size = args.image_size or (CUDA_SIZE if cuda else CPU_SIZE)
    args.warmup = args.warmup if args.warmup is not None else (CUDA_WARMUP if cuda else CPU_WARMUP)
    args.steps = args.steps or (CUDA_STEPS if cuda else CPU_STEPS)
    args.precision = resolve_precision(args.precision, args.device)
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be at least 1 (the first step includes start-up costs)")
    try:
        JobSpec(batch_size=args.batch_size, image_size=args.image_size)
    except ValidationError as exc:
        p.error("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors()))
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # as the worker does: the cores this process was given
    print(f"machine: {machine()}", flush=True)
    b = profile_step(
        args.device,
        args.precision,
        args.batch_size,
        args.image_size,
        args.warmup,
        args.steps,
        args.tuning,
        args.top,
        args.seed,
        args.trace,
        lambda line: print(f"  {line}", flush=True),
    )
    print(f"\n## Where a training step's time goes\n\nMachine: {machine()}.\n\n{setup_line(b)}.\n")
    print(parts_table(b))
    print(f"\n{summary(b)}\n")
    print(top_table(b))


if __name__ == "__main__":
    main()
