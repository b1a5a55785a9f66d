"""A simulated fleet: N workers as threads of one process, each going through the real worker's database code paths
with training replaced by a sleep.

Each simulated worker registers, then loops as `worker.loop.Worker.run_once` does: reap lapsed leases, touch its
row, claim; idle, it waits as the real worker waits (a wake-up from `service.wakeup`, or the poll interval). A claimed
job runs `epochs` epochs of `epoch_seconds`, a heartbeat (lease, progress, log lines) every `heartbeat_seconds`, an
epoch record and a tiny artifact published through the real store after each epoch, then `finish` and the stream's
`end`, as the real worker's run and its `_keep_log` do. What it does not simulate: the training, and a process (and
a connection pool) per worker; here the N threads share `connections` connections, and claim latency is timed from
the moment a connection is held.
"""

import functools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service import events, jobs, records, workers
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status
from service.storage import make_store
from service.wakeup import Wakeups
from worker.publish import ArtifactWriter


@dataclass
class FleetStats:
    """What the fleet saw since the last `take`: claims (each look at the queue), heartbeats, runs, times."""

    looks: list[float] = field(default_factory=list)  # every claim transaction's seconds, found a job or not
    claims: list[float] = field(default_factory=list)  # those that found one
    beats: list[float] = field(default_factory=list)
    claimed_at: dict[int, float] = field(default_factory=dict)  # job id → wall-clock time of its claim
    epoch_at: dict[str, float] = field(default_factory=dict)  # "job:epoch" → wall-clock time its record committed
    finished: int = 0
    lease_lost: int = 0


class Fleet:
    """N simulated workers on `settings.database_url`; `start`, then `take` what they saw, then `stop`."""

    def __init__(
        self,
        settings: Settings,
        n: int,
        epoch_seconds: float,
        epochs: int = 2,
        connections: int = 20,
        wakeups: bool = True,
        name: str = "fleet",
    ) -> None:
        self.settings, self.n, self.epoch_seconds, self.epochs, self.name = settings, n, epoch_seconds, epochs, name
        # Generous timeouts: hundreds of threads queue for `connections`; a wait is not an outage here.
        timeout = max(settings.db_timeout_seconds, 60.0)
        self.engine = make_engine(settings.database_url, timeout, pool_size=connections)
        self.sessions = make_sessionmaker(self.engine)
        self.store = make_store(settings)
        self.wakeups = Wakeups(settings.database_url) if wakeups else None
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.stats = FleetStats()
        self.runs: Counter[int] = Counter()  # job id → how many times a simulated worker claimed it, ever
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> None:
        if self.wakeups is not None:
            self.wakeups.start()
        for i in range(self.n):
            thread = threading.Thread(target=self._worker, args=(f"{self.name}-{i}",), name=f"sim-{i}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        """Stop every simulated worker where it is (a running job stays running, as after a crash)."""
        self.stopping.set()
        if self.wakeups is not None:
            self.wakeups.stop()
        for thread in self.threads:
            thread.join(timeout=120)
        self.engine.dispose()

    def take(self) -> FleetStats:
        """What was seen since the last call, and start afresh."""
        with self.lock:
            stats, self.stats = self.stats, FleetStats()
        return stats

    def _idle(self, seen: int) -> None:
        """Wait as the real worker does when the queue had nothing for it (`seen`: the wake-ups before it looked)."""
        s = self.settings
        if self.wakeups is not None:
            self.wakeups.wait(self.wakeups.interval(s.poll_seconds, s.lease_seconds), self.stopping, since=seen)
        else:
            self.stopping.wait(s.poll_seconds)

    def _worker(self, worker_id: str) -> None:
        s = self.settings
        try:
            with transaction(self.sessions) as session:
                workers.register_worker(session, worker_id, "fleet", 0, "cuda (simulated)", True)
            while not self.stopping.is_set():
                start, seen = 0.0, self.wakeups.seen() if self.wakeups is not None else 0
                with transaction(self.sessions) as session:
                    session.connection()  # timed from here: the wait for one of the shared connections is not
                    start = time.perf_counter()
                    jobs.reap_expired(session)
                    workers.touch_worker(session, worker_id, None)
                    claim = jobs.claim_next(session, worker_id, True, s.lease_seconds, s.worker_alive_seconds, True)
                took, now = time.perf_counter() - start, time.time()
                with self.lock:
                    self.stats.looks.append(took)
                    if claim is not None:
                        self.stats.claims.append(took)
                        self.stats.claimed_at[claim.job_id] = now
                        self.runs[claim.job_id] += 1
                if claim is None:
                    self._idle(seen)
                    continue
                try:
                    self._run(worker_id, claim)
                except jobs.LeaseLost:
                    with self.lock:
                        self.stats.lease_lost += 1
        except Exception as exc:  # one thread's failure is the run's result, not a silent hole in the fleet
            if not self.stopping.is_set():
                self.errors.append(f"{worker_id}: {exc!r}")

    def _run(self, worker_id: str, claim: jobs.Claim) -> None:
        s, job_id, token = self.settings, claim.job_id, claim.token
        steps_total = self.epochs * 10
        writer = ArtifactWriter(self.store, self.sessions, claim)
        for epoch in range(1, self.epochs + 1):
            end = time.monotonic() + self.epoch_seconds
            while (left := end - time.monotonic()) > 0:
                if self.stopping.wait(min(s.heartbeat_seconds, left)):
                    return
                if time.monotonic() < end:  # a beat falls within the epoch, as the real heartbeat thread's do
                    self._beat(worker_id, claim, steps_total, epoch)
            with transaction(self.sessions) as session:
                records.record_epoch(session, job_id, token, _epoch(epoch))
            with self.lock:
                self.stats.epoch_at[f"{job_id}:{epoch}"] = time.time()
            writer.publish("metrics.csv", functools.partial(_write_metrics, epoch=epoch))
        with transaction(self.sessions) as session:
            jobs.finish(session, job_id, token, Status.SUCCEEDED)
        with transaction(self.sessions) as session:
            events.emit_logs(session, job_id, [f"job {job_id} succeeded on {worker_id}"])
            events.emit_end(session, job_id, Status.SUCCEEDED)
        writer.discard()
        with self.lock:
            self.stats.finished += 1

    def _beat(self, worker_id: str, claim: jobs.Claim, steps_total: int, epoch: int) -> None:
        start = time.perf_counter()
        with transaction(self.sessions) as session:
            jobs.heartbeat(
                session, claim.job_id, claim.token, self.settings.lease_seconds, (epoch - 1) * 10, steps_total, 1.0
            )
            workers.touch_worker(session, worker_id, claim.job_id)
            events.emit_logs(session, claim.job_id, [])
        with self.lock:
            self.stats.beats.append(time.perf_counter() - start)


def _write_metrics(path: Path, epoch: int) -> None:
    """A tiny stand-in for an epoch's files, published through the real store."""
    path.write_text(f"epoch\n{epoch}\n")


def _epoch(epoch: int) -> dict[str, Any]:
    """An epoch's record as a worker would write it, with made-up numbers and a few steps' losses."""
    loss = 2.3 / epoch
    return {
        "epoch": epoch,
        "train_loss": loss,
        "test_loss": loss * 1.1,
        "test_accuracy": min(0.99, 0.1 * epoch),
        "seconds": 1.0,
        "images_per_second": 30_000.0,
        "step_losses": [loss] * 10,
    }
