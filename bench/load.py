"""`python -m bench.load`: how fast the API answers reads, on SQLite.

Default mode: starts the API (`python -m service.api`) and one worker (`python -m worker`) as real processes on
127.0.0.1, over a fresh SQLite database migrated by Alembic. One job trains for the whole run (its heartbeats,
epoch rows and artifact rows are the writes the reads compete with); `--clients` threads poll that job's
`GET /jobs/{id}` and `GET /jobs/{id}/metrics` alternately for `--seconds`. Prints the request count, errors,
requests per second and latency percentiles, and a markdown line for the README; then cancels the job and
stops both processes by pid. `--streams N` also keeps N event streams open meanwhile (half on the job's
`/jobs/{id}/events`, half on `/events`, as browser tabs on the job and list pages would), and reports how many
events they got and whether any dropped.

`--wrk`: the API alone (one job queued, no worker), each route driven by `wrk` (Debian's package) with 1 and
then 4 connections, so that no Python client competes with the API for the cores: what each route costs.
"""

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.processes import api_server, migrate, start_worker, stop, wait_for
from service.config import Settings

# The p99 the README promises for reads on SQLite while a job trains.
TARGET_P99_MS = 100.0
# A job that outlasts any run: small synthetic epochs (a few seconds each on a CPU), so that epoch rows,
# artifact rows and heartbeats are all written while the clients read. On the CPU, so that the figure does
# not depend on whether the machine has a GPU. Cancelled at the end.
JOB = {
    "name": "bench.load",
    "dataset": "synthetic",
    "image_size": 64,
    "batch_size": 32,
    "train_samples": 512,
    "test_samples": 256,
    "epochs": 1000,
    "device": "cpu",
}
# A request slower than this counts as an error; no read should come near it.
REQUEST_TIMEOUT_S = 10.0
# Loading data and building the model takes seconds; this bounds the wait for the first training step.
START_TIMEOUT_S = 180.0


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


def client(base: str, job_id: int, deadline: float, max_requests: int, samples: Samples) -> None:
    """One client: GET the job, then its metrics, and again, until the deadline or `max_requests`."""
    paths = [("job", f"/jobs/{job_id}"), ("metrics", f"/jobs/{job_id}/metrics")]
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        for i in range(max_requests):
            if time.monotonic() >= deadline:
                return
            endpoint, path = paths[i % 2]
            started = time.perf_counter()
            error: str | None = None
            try:
                response = http.get(path)
                if response.status_code != 200:
                    error = f"HTTP {response.status_code} {response.text[:120]}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            samples.add(endpoint, (time.perf_counter() - started) * 1000, error)


@dataclass
class Streams:
    """What the event-stream listeners saw."""

    events: int = 0
    dropped: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def listener(base: str, path: str, deadline: float, seen: Streams) -> None:
    """Hold one event stream open until `deadline`, counting its events; a stream that breaks is a drop."""
    events = 0
    try:
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=None)
        with httpx.Client(base_url=base, timeout=timeout) as http, http.stream("GET", path) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                events += line.startswith("event:")
                if time.monotonic() > deadline:
                    break
            else:
                raise RuntimeError("the stream ended early")
    except Exception as exc:
        with seen.lock:
            seen.dropped.append(f"{path}: {type(exc).__name__}: {exc}")
    with seen.lock:
        seen.events += events


@contextmanager
def service(root: Path) -> Iterator[tuple[str, Settings]]:
    """The API and one worker over a fresh database under `root`; both stopped by pid afterwards."""
    settings = Settings(
        database_url=f"sqlite:///{root / 'jobs.db'}", artifact_dir=root / "artifacts", data_dir=root / "data"
    )
    migrate(settings.database_url)
    with api_server(settings, root / "api.log") as base:
        worker = start_worker(settings, root / "worker.log")
        try:
            yield base, settings
        finally:
            stop(worker)


def job_state(http: httpx.Client, job_id: int) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"/jobs/{job_id}").raise_for_status().json()
    return body


def run(seconds: float, clients: int, max_requests: int, root: Path, streams: int = 0) -> bool:
    """The whole benchmark; True when p99 met the target and nothing failed."""
    with service(root) as (base, _), httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        job_id = int(http.post("/jobs", json=JOB).raise_for_status().json()["id"])
        try:
            print(f"job {job_id} queued; waiting for the worker to start training it …", flush=True)

            def training() -> bool:
                state = job_state(http, job_id)
                if state["status"] not in ("queued", "running"):
                    raise RuntimeError(f"job {job_id} ended {state['status']}: {state['error']}")
                return state["status"] == "running" and state["progress"]["steps_done"] > 0

            wait_for(training, START_TIMEOUT_S, f"job {job_id} to report its first training steps", interval=0.5)
            before = job_state(http, job_id)["progress"]
            print(f"training; {clients} clients read for {seconds:g} s …", flush=True)

            samples = Samples()
            deadline = time.monotonic() + seconds
            per_client = max(1, max_requests // clients)
            threads = [
                threading.Thread(target=client, args=(base, job_id, deadline, per_client, samples), daemon=True)
                for _ in range(clients)
            ]
            seen = Streams()
            paths = [f"/jobs/{job_id}/events" if i % 2 == 0 else "/events" for i in range(streams)]
            threads += [
                threading.Thread(target=listener, args=(base, path, deadline, seen), daemon=True) for path in paths
            ]
            load_before, started = os.getloadavg()[0], time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 2 * REQUEST_TIMEOUT_S)
            elapsed, load_after = time.perf_counter() - started, os.getloadavg()[0]
            after = job_state(http, job_id)
        finally:
            cancelled = http.post(f"/jobs/{job_id}/cancel")
            print(f"cancel job {job_id}: HTTP {cancelled.status_code}", flush=True)
            try:  # the worker notices at its next step; the processes are stopped by pid either way
                wait_for(lambda: job_state(http, job_id)["status"] == "cancelled", 60, f"job {job_id} to stop")
            except AssertionError as exc:
                print(f"warning: {exc}", file=sys.stderr)

    if after["status"] != "running":
        raise RuntimeError(f"job {job_id} stopped training during the run: {after['status']} {after['error']}")
    met = report(samples, elapsed, clients, seconds, before, after["progress"])
    if streams:
        print(f"{streams} event streams held open: {seen.events} events received, {len(seen.dropped)} dropped")
        for drop in seen.dropped[:5]:
            print(f"  {drop}")
        met = met and not seen.dropped
    cores = len(os.sched_getaffinity(0))
    # This run's API, worker and clients count in it; well above their share means other work competed.
    print(f"load average {load_before:.1f} before, {load_after:.1f} after, on {cores} cores")
    return met


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


# What --wrk measures: the framework alone (an unknown path, no database), then the reads a page makes.
WRK_ROUTES = ("/no-such-path", "/jobs/{id}", "/health", "/jobs/{id}/metrics")
WRK_CONNECTIONS = (1, 4)


def wrk(url: str, connections: int, seconds: float) -> tuple[float, float, float]:
    """`wrk` against `url` with one thread: (p50 ms, p99 ms, requests per second)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no {label} line in wrk's output:\n{out}")
        value, unit = float(found[1]), found[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rate is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    if errors and "no-such-path" not in url:
        raise RuntimeError(f"{url}: {errors[1]} responses were errors")
    return ms("50%"), ms("99%"), float(rate[1])


def run_wrk(seconds: float, root: Path) -> None:
    """Each route's cost with the API alone on this machine, as a markdown table."""
    if shutil.which("wrk") is None:
        raise SystemExit("--wrk needs wrk on the PATH (Debian: apt-get install wrk)")
    settings = Settings(
        database_url=f"sqlite:///{root / 'jobs.db'}", artifact_dir=root / "artifacts", data_dir=root / "data"
    )
    migrate(settings.database_url)
    with api_server(settings, root / "api.log") as base:
        job_id = int(httpx.post(f"{base}/jobs", json=JOB).raise_for_status().json()["id"])
        print(f"API alone at {base}; job {job_id} queued, no worker; wrk -t1 for {seconds:g} s per line", flush=True)
        header = " | ".join(f"{c} conn: p50 | {c} conn: p99 | {c} conn: req/s" for c in WRK_CONNECTIONS)
        lines = [f"| route | {header} |", "|---|" + "---:|" * 3 * len(WRK_CONNECTIONS)]
        for route in WRK_ROUTES:
            cells = []
            for connections in WRK_CONNECTIONS:
                p50, p99, rate = wrk(base + route.format(id=job_id), connections, seconds)
                cells += [f"{p50:.2f} ms", f"{p99:.2f} ms", f"{rate:,.0f}"]
            lines.append(f"| `GET {route}` | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    cores = len(os.sched_getaffinity(0))
    print(f"\nSQLite, {cores} cores, load average {os.getloadavg()[0]:.1f}:", *lines, sep="\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the clients read (default 30)")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients (default 10)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="stop early after this many requests")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (database, api.log, worker.log)")
    parser.add_argument("--wrk", action="store_true", help="each route's cost, the API alone, measured by wrk")
    parser.add_argument("--streams", type=int, default=0, help="event streams held open meanwhile (default 0)")
    args = parser.parse_args()
    if not (0 < args.seconds <= 3600 and 1 <= args.clients <= 200 and args.max_requests >= args.clients):
        parser.error("need 0 < --seconds ≤ 3600, 1 ≤ --clients ≤ 200 and --max-requests ≥ --clients")
    root = Path(tempfile.mkdtemp(prefix="alexnet-jobs-load-"))
    try:
        if args.wrk:
            run_wrk(min(args.seconds, 10.0), root)
        else:
            run(args.seconds, args.clients, args.max_requests, root, args.streams)
    except BaseException:
        for log in ("api.log", "worker.log"):
            if (root / log).exists():
                tail = (root / log).read_text(errors="replace").splitlines()[-20:]
                print(f"--- last lines of {log}:", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
