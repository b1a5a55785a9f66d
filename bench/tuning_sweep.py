"""The tuning sweep's plan and verdict: which candidate runs when, what counts as a gain, what to set ENGINE_TUNING to.

Pure: the timings come from a `run` function (in `python -m bench.tuning`, a fresh process per candidate) and the
budget's clock is an argument, so that the decisions can be checked on fixed timings.
"""

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from worker.tuning import Tuning


@dataclass
class Result:
    tuning: str
    setup: float  # seconds, fit called → first step begins (or warm-up → first step, with warm_up)
    epochs: list[float]  # each epoch's seconds, training and evaluation
    images_per_second: float  # the later epochs' training throughput (all epochs' when there is one)
    fit_seconds: float  # fit called → it returned
    warm_up: float = 0.0  # seconds of the warm-up before fit, with warm_up=1 (not part of the job)
    pid: int = 0  # the process that ran it: each candidate starts cold in a process of its own

    @property
    def cold_ratio(self) -> float:
        later = self.epochs[1:] or self.epochs
        return self.epochs[0] / statistics.median(later)


# One candidate run: its name and the seconds it may take → its Result, or why there is none.
Run = Callable[[str, float], Result | str]


@dataclass
class Sweep:
    """What a sweep found: each candidate's (median) result or why it has none, and what to set."""

    results: dict[str, Result | str]
    defaults: list[Result]  # every run of the defaults, in order
    noise: float  # the gain a choice had to clear: the floor, or the defaults' own spread if larger
    chosen: Tuning | None
    seconds: float


def parse_candidate(name: str) -> Tuning:
    """A candidate's ENGINE_TUNING string as a Tuning (`defaults` is the empty one); TuningError if it is wrong."""
    return Tuning.parse("" if name == "defaults" else name)


def sweep(
    candidates: list[str],
    run: Run,
    repeats: int = 1,
    noise: float = 0.02,
    timeout: float = 300,
    budget: float = 1e9,
    say: Callable[[str], None] = lambda line: None,
    clock: Callable[[], float] = time.perf_counter,
) -> Sweep:
    """Run the defaults first and last of each of `repeats` rounds, every other candidate once a round, then the
    choices that beat the defaults together; a candidate that fails is not run again, and past `budget` seconds
    the rest are skipped."""
    for candidate in candidates:
        parse_candidate(candidate)  # a typo stops the sweep before anything runs
    # Rounds rather than one candidate's repeats in a row, so that a slow spell of the machine falls on all alike;
    # the defaults open and close each round, and how far their runs differ is the noise a gain must clear.
    order = ["defaults", *(c for c in dict.fromkeys(candidates) if c != "defaults"), "defaults"]
    began = clock()

    def within_budget(candidate: str) -> Result | str:
        left = budget - (clock() - began)
        return run(candidate, min(timeout, left)) if left > 0 else "skipped: out of budget"

    runs: dict[str, list[Result]] = {}
    failed: dict[str, str] = {}
    for _ in range(repeats):
        for candidate in order:
            if candidate in failed:
                continue
            got = within_budget(candidate)
            if isinstance(got, str):
                failed[candidate] = got
                continue
            runs.setdefault(candidate, []).append(got)
            say(f"{candidate}: {json.dumps(asdict(got))}")
    results: dict[str, Result | str] = {c: median(runs[c]) if c in runs else failed[c] for c in dict.fromkeys(order)}
    floor = max(noise, spread(runs.get("defaults", [])))
    chosen = combine(results, floor)
    if chosen is not None and len(chosen.model_dump(exclude_defaults=True)) > 1:  # one alone has run already
        results[chosen.describe()] = within_budget(chosen.describe())
    return Sweep(results, runs.get("defaults", []), floor, chosen, clock() - began)


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


def spread(runs: list[Result]) -> float:
    """How far apart the runs' whole fits are, relative to the fastest: 0 for fewer than two."""
    seconds = [r.fit_seconds for r in runs]
    return (max(seconds) - min(seconds)) / min(seconds) if len(seconds) > 1 else 0.0


def median(runs: list[Result]) -> Result:
    """The run whose whole fit is the median one (the lower middle of an even count)."""
    ordered = sorted(runs, key=lambda r: r.fit_seconds)
    return ordered[(len(ordered) - 1) // 2]


def table(results: dict[str, Result | str], base: Result | None) -> str:
    """Each candidate's figures as a markdown table, its speed and whole fit against `base` (the defaults')."""
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


def report(s: Sweep) -> str:
    """The table, the noise the gains had to clear, and what to set ENGINE_TUNING to."""
    base = s.results.get("defaults")
    chosen = "none (no choice beat the defaults by more than that)." if s.chosen is None else s.chosen.describe()
    return (
        f"## The engine's speed choices\n\n{table(s.results, base if isinstance(base, Result) else None)}\n\n"
        f"The defaults ran {len(s.defaults)} times; their whole fits differ by {spread(s.defaults):.1%}. A choice is "
        f"taken when it beats the defaults' (the faster middle run) by more than {s.noise:.1%}.\n"
        f"ENGINE_TUNING to set: {chosen}\n"
        f"Sweep time: {s.seconds:.0f} s."
    )
