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
says so and the others go on; past `--budget`, the remaining ones are skipped and listed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from service.spec import JobSpec
from worker.data import load_dataset
from worker.hardware import resolve_device, resolve_precision
from worker.hooks import EpochEnd, QuietHooks, StartInfo
from worker.train import fit, warm_up
from worker.tuning import Tuning

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


@dataclass
class Result:
    tuning: str
    setup: float  # seconds, fit called → first step begins (or warm-up → first step, with warm_up)
    epochs: list[float]  # each epoch's seconds, training and evaluation
    images_per_second: float  # the later epochs' training throughput (all epochs' when there is one)
    fit_seconds: float  # fit called → it returned
    warm_up: float = 0.0  # seconds of the warm-up before fit, with warm_up=1 (not part of the job)

    @property
    def cold_ratio(self) -> float:
        later = self.epochs[1:] or self.epochs
        return self.epochs[0] / statistics.median(later)


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
    )


def in_a_process(args: argparse.Namespace, tuning: str, timeout: float) -> Result | str:
    """One candidate in a fresh Python process; its Result, or why there is none."""
    command = [sys.executable, "-m", "bench.tuning", "--child", tuning, *args.passed]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"ran past {timeout:.0f} s"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed ({done.returncode}): {last[:200]}"
    return Result(**json.loads(lines[-1]))


def table(results: dict[str, Result | str], base: Result | None) -> str:
    lines = [
        "| tuning | setup s | epoch 1 s | later epoch s | cold ratio | images/s | vs defaults | whole fit s "
        "| vs defaults |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        if isinstance(r, str):
            lines.append(f"| {name} | {r} |  |  |  |  |  |  |  |")
            continue
        later = statistics.median(r.epochs[1:] or r.epochs)
        speed = f"{r.images_per_second / base.images_per_second:.3f}×" if base else ""
        whole = f"{base.fit_seconds / r.fit_seconds:.3f}×" if base else ""
        warmed = f" (+{r.warm_up:.1f} s warm-up before)" if r.warm_up else ""
        lines.append(
            f"| {name} | {r.setup:.2f}{warmed} | {r.epochs[0]:.2f} | {later:.2f} | {r.cold_ratio:.2f}× | "
            f"{r.images_per_second:,.0f} | {speed} | {r.fit_seconds:.2f} | {whole} |"
        )
    return "\n".join(lines)


def combine(results: dict[str, Result | str], noise: float) -> Tuning | None:
    """The best choice of each kind that beat the defaults' whole fit by more than `noise`; None if none did."""
    base = results.get("defaults")
    if not isinstance(base, Result):
        return None
    chosen: dict[str, tuple[float, dict[str, object]]] = {}
    for name, r in results.items():
        if name == "defaults" or isinstance(r, str):
            continue
        gain = base.fit_seconds / r.fit_seconds
        values = Tuning.parse(name).model_dump(exclude_defaults=True)
        group = next(iter(values))
        if gain > 1 + noise and gain > chosen.get(group, (0.0, {}))[0]:
            chosen[group] = (gain, values)
    if not chosen:
        return None
    merged: dict[str, object] = {}
    for _, values in chosen.values():
        merged.update(values)
    return Tuning.model_validate(merged)


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
        result = run_one(spec_of(args), Tuning.parse("" if args.child == "defaults" else args.child))
        print(json.dumps(asdict(result)), flush=True)
        return
    spec, device = spec_of(args), resolve_device(args.device)
    # The parent passes its own arguments on to each child, less the sweep's own.
    args.passed = _child_arguments(sys.argv[1:])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name}, torch {torch.__version__}, {resolve_precision(spec.precision, device)}, batch "
        f"{spec.batch_size}, {spec.image_size} px, {spec.epochs} epochs on {spec.train_samples or 50_000:,} + "
        f"{spec.test_samples or 10_000:,} synthetic images; each candidate in a fresh process, median of "
        f"{args.repeats}",
        flush=True,
    )
    for candidate in args.candidates:
        Tuning.parse("" if candidate == "defaults" else candidate)  # a typo stops the sweep before it starts
    # Rounds rather than one candidate's repeats in a row, so that a slow spell of the machine falls on all alike;
    # the defaults open and close each round, and how far their runs differ is the noise a gain must clear.
    order = ["defaults", *(c for c in dict.fromkeys(args.candidates) if c != "defaults"), "defaults"]
    began = time.perf_counter()
    runs: dict[str, list[Result]] = {}
    failed: dict[str, str] = {}
    for _ in range(args.repeats):
        for candidate in order:
            left = args.budget - (time.perf_counter() - began)
            if candidate in failed or left <= 0:
                failed.setdefault(candidate, "skipped: out of budget")
                continue
            got = in_a_process(args, candidate, min(args.timeout, left))
            if isinstance(got, str):
                failed[candidate] = got
                continue
            runs.setdefault(candidate, []).append(got)
            print(f"  {candidate}: {json.dumps(asdict(got))}", flush=True)
    results: dict[str, Result | str] = {c: _median(runs[c]) if c in runs else failed[c] for c in dict.fromkeys(order)}
    noise = max(args.noise, spread(runs.get("defaults", [])))
    combined = combine(results, noise)
    if combined is not None and len(combined.model_dump(exclude_defaults=True)) > 1:  # one alone has run already
        name = combined.describe()
        left = args.budget - (time.perf_counter() - began)
        results[name] = in_a_process(args, name, min(args.timeout, left)) if left > 0 else "skipped: out of budget"
    base = results.get("defaults")
    print(f"\n## The engine's speed choices\n\n{table(results, base if isinstance(base, Result) else None)}\n")
    defaults = runs.get("defaults", [])
    print(
        f"The defaults ran {len(defaults)} times; their whole fits differ by {spread(defaults):.1%}. A choice is taken "
        f"when it beats the defaults' (the faster middle run) by more than {noise:.1%}."
    )
    if combined is None:
        print("ENGINE_TUNING to set: none (no choice beat the defaults by more than that).")
    else:
        print(f"ENGINE_TUNING to set: {combined.describe()}")
    print(f"Sweep time: {time.perf_counter() - began:.0f} s.")
    if args.out:
        every = {k: v if isinstance(v, str) else asdict(v) for k, v in results.items()}
        args.out.write_text(json.dumps({"results": every, "chosen": combined.describe() if combined else None}))


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


def spread(runs: list[Result]) -> float:
    """How far apart the runs' whole fits are, relative to the fastest: 0 for fewer than two."""
    seconds = [r.fit_seconds for r in runs]
    return (max(seconds) - min(seconds)) / min(seconds) if len(seconds) > 1 else 0.0


def _median(runs: list[Result]) -> Result:
    """The run whose whole fit is the median one (the lower middle of an even count)."""
    ordered = sorted(runs, key=lambda r: r.fit_seconds)
    return ordered[(len(ordered) - 1) // 2]


if __name__ == "__main__":
    main()
