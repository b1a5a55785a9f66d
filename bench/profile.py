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
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import ValidationError
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from bench.__main__ import machine
from bench.attribution import (
    BATCH,
    COMPILED,
    ELEMENTWISE,
    LAYERS,
    LOSS,
    OPTIMIZER,
    OTHER,
    Contents,
    Op,
    attribute,
    layer_ranges,
    marked_step,
)
from bench.measure import sync
from bench.peaks import peak_tflops
from service.spec import JobSpec
from worker.batches import DeviceImages
from worker.data import make_synthetic
from worker.hardware import TrainingError, resolve_device, resolve_precision
from worker.model import build_model, lecture_loss, make_optimizer, pad_conv1
from worker.tuning import Tuning, TuningError, prepare, use_cudnn_benchmark

# A GPU step is milliseconds, so more of them at the lecture's shapes; a CPU step is seconds, so few and small.
CUDA_BATCH, CUDA_SIZE, CUDA_WARMUP, CUDA_STEPS = 512, 224, 5, 10
CPU_BATCH, CPU_SIZE, CPU_WARMUP, CPU_STEPS = 32, 128, 1, 2
TOP = 15
MAX_NAME = 80  # kernel names run to hundreds of characters of template arguments


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


# ---------------------------------------------------------------- each layer's FLOPs


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
    with layer_ranges(model) if model_part == ELEMENTWISE else nullcontext(), profile(activities=activities) as prof:
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
