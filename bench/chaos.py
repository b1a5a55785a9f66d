"""`python -m bench.chaos`: a sweep trained through a storm of kills, then checked to have lost nothing.

`make run`'s supervisor with 2 workers (real processes, a fresh SQLite database and artifact folder under `--dir`)
trains a 6-job sweep while a worker is SIGKILLed every `--every` seconds for `--minutes` minutes, and the API once,
halfway; then no more faults. Meanwhile a client polls the API every half second. Passes when every job succeeded
with epochs exactly 1..N, each with every step's loss; no answer was a 5xx; and the API answered /health again
within 10 s of its kill. Prints the figures (kills, attempts per job, the API's way back, requests) and exits 1 on
a failure. Jobs checkpoint every `--checkpoint-seconds` (CHECKPOINT_SECONDS), so that runs shorter than an epoch
still move them on.
"""

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.processes import child_pids, migrate, serving, wait_for
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import EpochMetric, Job

SUPERVISOR = (sys.executable, "-m", "service.supervise")
API_BACK_WITHIN = 10.0


def sweep(epochs: int, steps: int, max_attempts: int) -> dict[str, object]:
    """Six small jobs on the CPU: `steps` steps an epoch of batch 8 at 63 px."""
    base = {
        "dataset": "synthetic",
        "image_size": 63,
        "batch_size": 8,
        "train_samples": 8 * steps,
        "test_samples": 32,
        "epochs": epochs,
        "device": "cpu",
        "max_attempts": max_attempts,
    }
    return {"name": "chaos", "base": base, "grid": {"seed": [1, 2, 3], "learning_rate": [0.001, 0.0001]}}


def children(supervisor: int, module: str) -> list[int]:
    """The supervisor's children that run `python -m <module>`."""
    found = []
    for pid in child_pids(supervisor):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"-m" in argv and argv[argv.index(b"-m") + 1] == module.encode():
            found.append(pid)
    return found


class Poller(threading.Thread):
    """A client reading the sweep and its jobs twice a second; counts answers by status, and what never came."""

    def __init__(self, base: str, sweep_id: int) -> None:
        super().__init__(daemon=True)
        self.base, self.sweep_id = base, sweep_id
        self.codes: Counter[int] = Counter()
        self.unreachable = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopping.wait(0.5):
                for path in (f"/sweeps/{self.sweep_id}", f"/jobs?sweep_id={self.sweep_id}", "/health"):
                    try:
                        self.codes[client.get(self.base + path).status_code] += 1
                    except httpx.TransportError:
                        self.unreachable += 1  # the API was down: not an answer, and never a 5xx


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long the kills go on")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between two worker kills")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="steps an epoch")
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=10,
        help="the jobs' max_attempts: runs in a row without progress before one fails (a worker killed within 30 s "
        "of its start, on a slow host, may never reach its first step)",
    )
    parser.add_argument("--checkpoint-seconds", type=float, default=10.0)
    parser.add_argument("--dir", type=Path, default=None, help="where the database and files go (a temp folder)")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="alexnet-chaos-"))
    url = f"sqlite:///{folder / 'jobs.db'}"
    migrate(url)
    settings = Settings(
        database_url=url,
        artifact_dir=folder / "artifacts",
        data_dir=folder / "data",
        scratch_dir=folder / "scratch",
        checkpoint_seconds=args.checkpoint_seconds,
        lease_seconds=20,
    )
    log = folder / "supervise.log"
    print(f"chaos: {folder} (log: {log})", flush=True)
    began = time.monotonic()
    with serving(SUPERVISOR, settings, log, WORKERS="2", ACCESS_LOG="false") as (supervisor, base):
        answer = httpx.post(f"{base}/sweeps", json=sweep(args.epochs, args.steps, args.max_attempts), timeout=30)
        answer.raise_for_status()
        sweep_id = answer.json()["id"]
        poller = Poller(base, sweep_id)
        poller.start()
        kills, api_back = 0, None
        end = time.monotonic() + args.minutes * 60
        api_at = time.monotonic() + args.minutes * 30
        while time.monotonic() < end:
            time.sleep(min(args.every, max(0.0, end - time.monotonic())))
            if api_back is None and time.monotonic() >= api_at:
                (api,) = children(supervisor.pid, "service.api")
                os.kill(api, signal.SIGKILL)
                killed = time.monotonic()
                wait_for(lambda: healthy(base), 60, "the API to come back")
                api_back = time.monotonic() - killed
                print(f"chaos: API killed, answering /health again after {api_back:.1f} s", flush=True)
            workers = children(supervisor.pid, "worker")
            if workers and time.monotonic() < end:
                os.kill(random.choice(workers), signal.SIGKILL)
                kills += 1
                print(f"chaos: worker kill {kills} at {time.monotonic() - began:.0f} s", flush=True)
        print("chaos: no more faults; waiting for the sweep to finish", flush=True)
        wait_for(lambda: finished(base, sweep_id), 3600, "the sweep to finish")
        took = time.monotonic() - began
        poller.stopping.set()
        poller.join()
    return report(settings, sweep_id, args, kills, api_back, poller, took)


def finished(base: str, sweep_id: int) -> bool:
    try:
        return bool(httpx.get(f"{base}/sweeps/{sweep_id}", timeout=10).json()["finished"])
    except httpx.TransportError:
        return False


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def report(
    settings: Settings,
    sweep_id: int,
    args: argparse.Namespace,
    kills: int,
    api_back: float | None,
    poller: Poller,
    finished: float,
) -> int:
    """Print the figures and check the promises; 0 when all held."""
    engine = make_engine(settings.database_url)
    problems = []
    with transaction(make_sessionmaker(engine)) as session:
        for job in session.query(Job).filter(Job.sweep_id == sweep_id).order_by(Job.id):
            epochs = session.query(EpochMetric).filter(EpochMetric.job_id == job.id).order_by(EpochMetric.epoch).all()
            numbers = [m.epoch for m in epochs]
            steps = [len(m.details.get("step_losses", [])) for m in epochs]
            print(f"job {job.id}: {job.status}, attempts {job.attempts}, epochs {numbers}, step losses {steps}")
            if job.status != "succeeded" or numbers != list(range(1, args.epochs + 1)):
                problems.append(f"job {job.id}: {job.status} ({job.error}), epochs {numbers}")
            if steps != [args.steps] * args.epochs:
                problems.append(f"job {job.id}: step losses per epoch {steps}")
    engine.dispose()
    server_errors = sum(n for code, n in poller.codes.items() if code >= 500)
    print(
        f"chaos: {kills} worker kills in {args.minutes:g} min, every {args.every:g} s; the API killed once, back in "
        f"{api_back if api_back is None else round(api_back, 1)} s; sweep finished {finished:.0f} s after the start; "
        f"{sum(poller.codes.values())} answers {dict(sorted(poller.codes.items()))}, {poller.unreachable} while "
        f"the API was down"
    )
    if server_errors:
        problems.append(f"{server_errors} answers were 5xx")
    if api_back is None or api_back > API_BACK_WITHIN:
        problems.append(f"the API was not back within {API_BACK_WITHIN:g} s")
    for problem in problems:
        print(f"FAILED: {problem}")
    print("chaos: every promise held" if not problems else "chaos: FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
