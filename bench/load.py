"""`python -m bench.load`: how fast the API answers reads, on SQLite.

Default mode: starts the API (`python -m service.api`) and one worker (`python -m worker`) as real processes on
127.0.0.1, over a fresh SQLite database migrated by Alembic. One job trains for the whole run (its heartbeats,
epoch rows and artifact rows are the writes the reads compete with); `--clients` threads poll that job's
`GET /jobs/{id}` and `GET /jobs/{id}/metrics` alternately for `--seconds`. Prints the request count, errors,
requests per second and latency percentiles, and a markdown line for the README; then cancels the job and
stops both processes by pid. `--streams N` also keeps N event streams open meanwhile (half on the job's
`/jobs/{id}/events`, half on `/events`, as browser tabs on the job and list pages would), and reports how many
events they got and whether any dropped.

`--wrk`: what each route costs, the API alone, measured by `wrk` (bench/wrk.py).
"""

import argparse
import os
import shutil
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

from bench import wrk
from bench.latency import Samples, report
from bench.processes import api_server, migrate, start_worker, stop, wait_for
from service.config import Settings

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
            wrk.run(min(args.seconds, 10.0), root, JOB)
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
