"""What the load's clients saw: each request's latency by endpoint and its errors, and the report of them."""

import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any

# The p99 the README promises for reads on SQLite while a job trains.
TARGET_P99_MS = 100.0


@dataclass
class Samples:
    """What the clients saw: one latency (ms) per answered request, by endpoint; errors by kind."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"job": [], "metrics": []})
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, endpoint: str, ms: float, error: str | None) -> None:
        with self.lock:
            if error is None:
                self.latencies[endpoint].append(ms)
            else:
                self.errors[error] = self.errors.get(error, 0) + 1


def percentile(sorted_ms: list[float], p: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)] if sorted_ms else float("nan")


def report(
    samples: Samples, elapsed: float, clients: int, seconds: float, before: dict[str, Any], after: dict[str, Any]
) -> bool:
    """Print the figures; True when p99 met the target and no request failed."""
    everything = sorted(ms for ms_list in samples.latencies.values() for ms in ms_list)
    errors = sum(samples.errors.values())
    count = len(everything) + errors
    rate = count / elapsed
    print(f"\nrequests {count:,}  errors {errors}  {rate:,.0f} req/s over {elapsed:.1f} s with {clients} clients")
    print(
        f"worker meanwhile: steps {before['steps_done']} → {after['steps_done']}, "
        f"epochs {before['epochs_completed']} → {after['epochs_completed']}"
    )
    for kind, n in sorted(samples.errors.items()):
        print(f"  error ×{n}: {kind}")
    print(f"\n{'endpoint':<22}{'count':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}  (ms)")
    rows = [("GET /jobs/{id}", samples.latencies["job"]), ("GET /jobs/{id}/metrics", samples.latencies["metrics"])]
    for name, ms_list in [*rows, ("all", everything)]:
        s = sorted(ms_list)
        print(f"{name:<22}{len(s):>8,}" + "".join(f"{percentile(s, p):>9.1f}" for p in (50, 95, 99)) + f"{s[-1]:>9.1f}")
    p50, p95, p99 = (percentile(everything, p) for p in (50, 95, 99))
    cores = len(os.sched_getaffinity(0))
    print(
        f"\n| SQLite, {cores} cores, 1 worker training, {clients} clients, {seconds:g} s "
        f"| {count:,} requests, {errors} errors | {rate:,.0f} req/s "
        f"| p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {everything[-1]:.1f} ms |"
    )
    met = p99 <= TARGET_P99_MS and errors == 0
    print(f"\np99 {p99:.1f} ms {'meets' if met else 'MISSES'} the {TARGET_P99_MS:.0f} ms target", end="")
    print("." if errors == 0 else f", and {errors} requests failed.")
    return met
