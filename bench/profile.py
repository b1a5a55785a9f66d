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
from pathlib import Path

import torch
from pydantic import ValidationError
from torch.profiler import ProfilerActivity, profile

from bench.__main__ import machine
from bench.attribution import COMPILED, ELEMENTWISE, attribute, layer_ranges, marked_step
from bench.breakdown import Breakdown, part_flops, part_rows, parts_table, setup_line, summary, top_table
from bench.measure import sync
from service.spec import JobSpec
from worker.batches import DeviceImages
from worker.data import make_synthetic
from worker.hardware import TrainingError, resolve_device, resolve_precision
from worker.model import build_model, make_optimizer
from worker.tuning import Tuning, TuningError, prepare, use_cudnn_benchmark

# A GPU step is milliseconds, so more of them at the lecture's shapes; a CPU step is seconds, so few and small.
CUDA_BATCH, CUDA_SIZE, CUDA_WARMUP, CUDA_STEPS = 512, 224, 5, 10
CPU_BATCH, CPU_SIZE, CPU_WARMUP, CPU_STEPS = 32, 128, 1, 2
TOP = 15


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
        rows=part_rows(contents, part_flops(batch_size, image_size, tuning), model_part),
        top=ops,
        contents=contents,
        notes=notes,
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
