"""`python -m bench.tuning`: the engine's speed choices (worker/tuning.py), each against the defaults, end to end.

Each candidate trains the same short job with `worker.train.fit` (3 epochs by default, on the full synthetic
50,000 + 10,000 on CUDA) in a process of its own, so that what a process keeps (cuDNN's choices, compiled
code) starts cold for each, as in a worker's first job. A candidate's figures therefore include its one-off
costs: upscaling the set, compiling, autotuning. Per candidate:

- setup: fit called → first training step begins (data to the device, model built, the set upscaled if asked);
- epoch 1 and the median later epoch, training and evaluation included; their ratio is the cold start;
- images/s: the later epochs' training throughput;
- the whole fit, start to last evaluation: what a job spends training.

The defaults run first and last in each round (`--repeats` rounds); a choice counts as a gain only when it beats
their whole fit by more than `--noise` and by more than their own runs differ. The choices that do are then run
together, and the last line says what to set ENGINE_TUNING to. A candidate that fails or runs past `--timeout`
says so and the others go on; past `--budget`, the remaining ones are skipped and listed. That plan and verdict are
`bench/tuning_sweep.py`'s; this module runs the candidates' processes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from bench.tuning_sweep import Result, parse_candidate, report, sweep
from service.spec import JobSpec
from worker.data import load_dataset
from worker.hardware import resolve_device, resolve_precision
from worker.hooks import EpochEnd, QuietHooks, StartInfo
from worker.train import fit, warm_up
from worker.tuning import Tuning, TuningError

# One at a time, cheapest first: a run out of budget loses the costly ones (compiling) rather than the rest.
CANDIDATES = (
    "defaults",
    "upscale_once=1",
    "conv1_channels=4",
    "conv1_channels=8",
    "eval_batch=512",
    "cudnn_benchmark=train",
    "cudnn_benchmark=off",
    "warm_up=1",
    "compile=default",
    "compile=reduce-overhead",
    "compile=max-autotune-no-cudagraphs",
)


class _Clock(QuietHooks):
    """Hooks that note when the first step begins and each epoch's seconds."""

    def __init__(self) -> None:
        self.first_step = 0.0
        self.results: list[EpochEnd] = []

    def on_start(self, info: StartInfo) -> None:
        self.first_step = time.perf_counter()

    def on_epoch_end(self, end: EpochEnd) -> None:
        self.results.append(end)


def run_one(spec: JobSpec, tuning: Tuning) -> Result:
    """`fit` once in this process, timed; the warm-up (if any) first, as a worker does before its first claim."""
    device = resolve_device(spec.device)
    data = load_dataset(spec.dataset, Path("var/data"), spec.train_samples, spec.test_samples, spec.seed)
    warmed = warm_up(spec, tuning) if tuning.warm_up else 0.0
    clock = _Clock()
    began = time.perf_counter()
    fit(spec, data, clock, tuning=tuning)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ended = time.perf_counter()
    results = [end.result for end in clock.results]
    later = results[1:] or results
    return Result(
        tuning=tuning.describe(),
        setup=clock.first_step - began,
        epochs=[r.seconds for r in results],
        images_per_second=statistics.median(r.images_per_second for r in later),
        fit_seconds=ended - began,
        warm_up=warmed,
        pid=os.getpid(),
    )


def in_a_process(passed: list[str], tuning: str, timeout: float) -> Result | str:
    """One candidate in a fresh Python process, given the sweep's job arguments; its Result, or why there is none."""
    command = [sys.executable, "-m", "bench.tuning", "--child", tuning, *passed]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"ran past {timeout:.0f} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed ({done.returncode}): {last[:200]}"
    return Result(**json.loads(lines[-1]))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.tuning", description=__doc__)
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--image-size", type=int, help="default 224 on CUDA, 64 on the CPU")
    p.add_argument("--train-samples", type=int, help="default all 50,000 on CUDA, 4 batches on the CPU")
    p.add_argument("--test-samples", type=int, help="default all 10,000 on CUDA, 1 batch on the CPU")
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), help="ENGINE_TUNING strings, one per run")
    p.add_argument("--repeats", type=int, default=1, help="runs of each candidate; the table shows the median")
    p.add_argument("--noise", type=float, default=0.02, help="gain under which a choice is not taken (0.02 = 2 %%)")
    p.add_argument("--timeout", type=float, default=300, help="seconds one candidate's process may take")
    p.add_argument("--budget", type=float, default=1e9, help="seconds for the whole sweep; later candidates skip")
    p.add_argument("--out", type=Path, help="write every result here as JSON")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    for candidate in args.candidates:  # a typo stops the sweep before anything runs
        try:
            parse_candidate(candidate)
        except TuningError as exc:
            p.error(str(exc))
    cuda = resolve_device(args.device).type == "cuda"
    args.image_size = args.image_size or (224 if cuda else 64)
    if not cuda:
        args.train_samples = args.train_samples or 4 * args.batch_size
        args.test_samples = args.test_samples or args.batch_size
    return args


def spec_of(args: argparse.Namespace) -> JobSpec:
    return JobSpec(
        dataset="synthetic",
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        train_samples=args.train_samples,
        test_samples=args.test_samples,
        device=args.device,
        precision=args.precision,
        seed=0,
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if args.child is not None:  # one candidate, its Result as the last line of output
        result = run_one(spec_of(args), parse_candidate(args.child))
        print(json.dumps(asdict(result)), flush=True)
        return
    spec, device = spec_of(args), resolve_device(args.device)
    # The parent passes its own arguments on to each child, less the sweep's own.
    passed = _child_arguments(sys.argv[1:])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name}, torch {torch.__version__}, {resolve_precision(spec.precision, device)}, batch "
        f"{spec.batch_size}, {spec.image_size} px, {spec.epochs} epochs on {spec.train_samples or 50_000:,} + "
        f"{spec.test_samples or 10_000:,} synthetic images; each candidate in a fresh process, median of "
        f"{args.repeats}",
        flush=True,
    )
    found = sweep(
        args.candidates,
        lambda candidate, timeout: in_a_process(passed, candidate, timeout),
        repeats=args.repeats,
        noise=args.noise,
        timeout=args.timeout,
        budget=args.budget,
        say=lambda line: print(f"  {line}", flush=True),
    )
    print(f"\n{report(found)}")
    if args.out:
        every = {k: v if isinstance(v, str) else asdict(v) for k, v in found.results.items()}
        chosen = found.chosen.describe() if found.chosen else None
        args.out.write_text(json.dumps({"results": every, "chosen": chosen}))


def _child_arguments(argv: list[str]) -> list[str]:
    """The arguments that shape the job (device, sizes, epochs), without the sweep's own."""
    sweep_only = {"--candidates", "--repeats", "--noise", "--timeout", "--budget", "--out"}
    kept, skipping = [], False
    for arg in argv:
        if arg.startswith("--"):
            skipping = arg.split("=", 1)[0] in sweep_only
        if not skipping:
            kept.append(arg)
    return kept


if __name__ == "__main__":
    main()
