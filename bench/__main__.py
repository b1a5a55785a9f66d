"""`python -m bench`: the lecture's pipeline vs the service's engine, then a job of a few epochs through a worker.

Prints progress as it goes and ends with markdown tables that can be pasted into the README.
"""

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from bench.job import bench_job, time_job
from bench.job_timing import JobTiming, job_table
from bench.measure import PREFETCH_FACTOR, Progress, Throughput, time_engine, time_lecture, train_step_flops
from bench.peaks import measure_peaks, throughput_table
from service.spec import JobSpec
from worker.data import FULL_TEST, FULL_TRAIN, Dataset, load_dataset
from worker.hardware import resolve_device, resolve_precision
from worker.model import build_model
from worker.tuning import Tuning, TuningError

CUDA_BATCH, CPU_BATCH = 512, 512  # the lecture's batch everywhere: it fits in a CPU's memory too
# Warm-up and timed steps: a GPU step is milliseconds, so more of them; a CPU step is seconds.
CUDA_WARMUP, CUDA_STEPS, CPU_WARMUP, CPU_STEPS = 5, 60, 1, 3
# The job's training steps an epoch: on a GPU all of them (3 epochs of 50,000 images take seconds); on a CPU, where
# an epoch takes hours, two, so that its cold start still shows against a warm epoch.
CPU_JOB_STEPS = 2


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--steps", type=int, help=f"timed steps per pipeline (default {CUDA_STEPS} CUDA, {CPU_STEPS} CPU)")
    p.add_argument("--warmup", type=int, help=f"untimed steps first (default {CUDA_WARMUP} CUDA, {CPU_WARMUP} CPU)")
    p.add_argument("--image-size", type=int, default=224, help="side the 32×32 images are upscaled to")
    p.add_argument("--batch-size", type=int, help=f"images per step (default {CUDA_BATCH} CUDA, {CPU_BATCH} CPU)")
    p.add_argument(
        "--precision",
        nargs="+",
        choices=["auto", "bf16", "fp32"],
        default=["auto", "fp32"],
        help="engine precisions to time; the first is compared with the lecture and used for the job "
        "(default: the service's default, then fp32, the lecture's numerics)",
    )
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--workers", type=int, help="the lecture DataLoader's num_workers (default: one per core)")
    p.add_argument("--dataset", choices=["synthetic", "cifar10"], default="synthetic", help="full 50,000 + 10,000")
    p.add_argument("--data-dir", type=Path, default=Path("var/data"), help="where cifar10 is (or is downloaded)")
    p.add_argument(
        "--train-images", type=int, help=f"synthetic training images (default {FULL_TRAIN:,}; the test set is a fifth)"
    )
    p.add_argument("--tuning", default="", help="the engine's speed choices, as ENGINE_TUNING (worker/tuning.py)")
    p.add_argument("--job-epochs", type=int, default=3, help="epochs of the timed job (default 3)")
    p.add_argument(
        "--job-steps",
        metavar="N|all",
        help=f"training steps an epoch of the timed job, with one batch of test images; `all`: every training and "
        f"test image (default all on CUDA, {CPU_JOB_STEPS} on a CPU)",
    )
    p.add_argument("--skip-job", action="store_true", help="do not time a job through the worker")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.device = resolve_device(args.device)
    cuda = args.device.type == "cuda"
    args.batch_size = args.batch_size or (CUDA_BATCH if cuda else CPU_BATCH)
    args.warmup = args.warmup if args.warmup is not None else (CUDA_WARMUP if cuda else CPU_WARMUP)
    args.steps = args.steps or (CUDA_STEPS if cuda else CPU_STEPS)
    args.workers = args.workers if args.workers is not None else len(os.sched_getaffinity(0))
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be at least 1 (the first step includes start-up costs)")
    if not args.skip_job and not 63 <= args.image_size <= 512:
        p.error("a job's image_size is 63 to 512; use --skip-job for other sizes")
    try:
        args.tuning = Tuning.parse(args.tuning)
    except TuningError as exc:
        p.error(str(exc))
    steps = args.job_steps or ("all" if cuda else str(CPU_JOB_STEPS))
    if not (steps == "all" or (steps.isdigit() and int(steps) >= 1)) or args.job_epochs < 1:
        p.error("--job-steps is a whole number from 1, or `all`; --job-epochs a whole number from 1")
    args.job_steps = None if steps == "all" else int(steps)
    if args.train_images is not None and (args.dataset != "synthetic" or args.train_images < 5):
        p.error("--train-images is for the synthetic set, and at least 5 (one per CIFAR-10 training file)")
    # `auto` and an explicit precision can name the same thing; time each once.
    args.precision = list(dict.fromkeys(resolve_precision(r, args.device) for r in args.precision))
    return args


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}, device {device}"


def progress(name: str) -> Progress:
    """Prints a line every tenth of the steps (and at the warm-up's end), with the mean step time since the last.

    On a GPU the engine's steps are queued, not finished, when reported, so only the timed total is exact.
    """
    pending = {"steps": 0, "seconds": 0.0}

    def report(step: int, warmup: int, total: int, seconds: float) -> None:
        pending["steps"] += 1
        pending["seconds"] += seconds
        if step % max(1, total // 10) and step not in (1, warmup, total):
            return
        what = "warm-up" if step <= warmup else "timed"
        mean = pending["seconds"] / pending["steps"]
        print(f"  {name}: step {step}/{total} ({what}), {mean:.3f} s/step", flush=True)
        pending.update(steps=0, seconds=0.0)

    return report


def time_pipelines(args: argparse.Namespace, data: Dataset) -> list[Throughput]:
    """The lecture's pipeline, then the engine (with `--tuning`) at each precision asked for, from the same initial
    weights."""
    device = args.device
    cfg = JobSpec(epochs=1, batch_size=args.batch_size, image_size=args.image_size, seed=args.seed, device=device.type)
    initial = build_model(device, args.seed).state_dict()
    steps = (args.warmup, args.steps)
    rows = [time_lecture(data, cfg, device, initial, *steps, args.workers, progress("lecture"))]
    print(f"  lecture: {rows[-1].images_per_second:.1f} images/s", flush=True)
    for precision in args.precision:
        run_cfg = cfg.model_copy(update={"precision": precision})
        rows.append(time_engine(data, run_cfg, device, initial, *steps, progress(f"engine {precision}"), args.tuning))
        print(f"  engine {precision}: {rows[-1].images_per_second:.1f} images/s", flush=True)
    return rows


def time_one_job(args: argparse.Namespace, data: Dataset) -> JobTiming:
    """A job of `--job-epochs` epochs of `--job-steps` steps on CIFAR-10 files of `data`, through a burst worker."""
    spec = bench_job(
        args.job_epochs,
        args.job_steps,
        args.batch_size,
        args.image_size,
        args.device.type,
        args.precision[0],
        args.seed,
    )
    return time_job(data, spec, lambda line: print(f"  {line}", flush=True), args.tuning)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # as the worker does: the cores this process was given
    started, load_before, cores = time.perf_counter(), os.getloadavg()[0], len(os.sched_getaffinity(0))
    batch_note = " (the lecture's)" if args.batch_size == CUDA_BATCH else ""
    workers_note = " (one per core)" if args.workers == cores else ""
    lecture_warmup = max(args.warmup, args.workers * PREFETCH_FACTOR)
    setup = (
        f"batch {args.batch_size}{batch_note}, {args.image_size}×{args.image_size}, {args.warmup} warm-up steps "
        f"excluded ({lecture_warmup} for the lecture, whose workers prefetch {PREFETCH_FACTOR} batches each), "
        f"{args.steps} timed; lecture: PIL Resize + ToTensor in a DataLoader with "
        f"num_workers={args.workers}{workers_note}; engine: worker.train.fit, tuning: {args.tuning.describe()}"
    )
    print(f"machine: {machine()}\n{setup}", flush=True)
    n_test = None if args.train_images is None else max(1, args.train_images * FULL_TEST // FULL_TRAIN)
    data = load_dataset(args.dataset, args.data_dir, args.train_images, n_test, args.seed)
    print(f"data: {args.dataset}, {len(data.train_labels):,} train + {len(data.test_labels):,} test images", flush=True)
    if (args.warmup + args.steps) * args.batch_size > len(data.train_labels):
        raise SystemExit("the engine's warm-up + timed steps need more images than the training set has")
    if not args.skip_job and (args.job_steps or 0) * args.batch_size > len(data.train_labels):
        raise SystemExit("the job's steps need more images than the training set has")

    peaks = measure_peaks(args.device)
    print("  matrix-product peak: " + ", ".join(f"{p} {t:.3g} TFLOP/s" for p, t in peaks.tflops.items()), flush=True)

    rows = time_pipelines(args, data)
    timing = None if args.skip_job else time_one_job(args, data)

    step_flops = train_step_flops(args.batch_size, args.image_size)
    load_after = os.getloadavg()[0]
    print(f"\n## Benchmark results\n\nMachine: {machine()}.\n")
    print(
        f"Same data ({args.dataset}) and initial weights; {setup}. One training step is "
        f"{step_flops / args.batch_size / 1e9:.2f} GFLOP per image (FlopCounterMode).\n"
    )
    print(f"{peaks.describe()}\n")
    print(throughput_table(rows, step_flops, peaks))
    ratio = rows[1].images_per_second / rows[0].images_per_second
    print(f"\nEngine ({rows[1].precision}) / lecture: **{ratio:.2f}×**.")
    if timing is not None:
        print(f"\n{job_table(timing)}")
    busy = max(load_before, load_after) > cores + 0.5
    print(
        f"\nLoad average {load_before:.1f} before, {load_after:.1f} after, on {cores} cores"
        + (": other processes were competing for the CPU, so these figures are low." if busy else ".")
    )
    print(f"Total bench time: {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
