"""One host's processes under the supervisor, for real: the API and workers as processes, a worker killed, the whole
tree stopped, one worker per GPU; and the state transition that takes a dead worker's job back."""

import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.processes import (
    api_server,
    child_pids,
    env_for,
    is_running,
    serving,
    start,
    stop,
    wait_for,
)
from service import jobs
from service.config import Settings
from service.db import transaction
from service.models import FINISHED, Job, Status
from tests.helpers import LIGHT_JOB, Db, Sessions, make_settings, queue_jobs

SUPERVISOR = (sys.executable, "-m", "service.supervise")
# Small enough to train in seconds on 2 cores; three epochs, so that a kill in the second leaves work to resume.
SPEC = {**LIGHT_JOB, "epochs": 3}
# Longer than every wait in the test that uses it: a job that trains again was taken back, not reaped.
LONG_LEASE_SECONDS = 600.0
STOP_SECONDS = 15


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Leases twice as long as the promise, so only a take-back at once can keep it; workers listed while alive."""
    return make_settings(tmp_path, sqlite_url, lease_seconds=30.0, heartbeat_seconds=0.5, worker_alive_seconds=5.0)


def live_workers(base: str) -> list[dict]:
    return list(httpx.get(f"{base}/health", timeout=5).json()["workers"])


class HealthWatch(threading.Thread):
    """Asks the API for /health every 0.2 s until stopped, keeping every answer that was not a 200."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.done = base, threading.Event()
        self.answers = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.done.wait(0.2):
            try:
                response = httpx.get(f"{self.base}/health", timeout=5)
                self.answers += 1
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text}")
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))

    def stop(self) -> None:
        self.done.set()
        self.join()


# ---------------------------------------------------------------- the state transition


@pytest.fixture
def any_database(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


def claimed(sessions: Sessions, worker: str, **spec: object) -> int:
    (job_id,) = queue_jobs(sessions, **spec)
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, worker, False, 30, alive_seconds=30)
    assert claim is not None and claim.job_id == job_id
    return job_id


def test_a_dead_workers_job_is_taken_back_at_once_and_no_other(any_database: Settings, sessions: Sessions) -> None:
    dead, other = claimed(sessions, "dead"), claimed(sessions, "alive")
    with transaction(sessions) as s:
        assert jobs.release_dead_worker(s, "dead") == [dead]
        assert jobs.release_dead_worker(s, "dead") == []  # repeating it changes nothing
    with transaction(sessions) as s:
        job = s.get_one(Job, dead)
        assert (job.status, job.attempts, job.worker_id, job.lease_token) == (Status.QUEUED, 1, None, None)
        assert s.get_one(Job, other).status == Status.RUNNING  # a lease still held by a live worker is left alone


def test_a_dead_workers_job_fails_after_max_attempts_or_ends_cancelled_if_asked(
    any_database: Settings, sessions: Sessions
) -> None:
    out_of_attempts = claimed(sessions, "dead", max_attempts=1)
    with transaction(sessions) as s:
        jobs.release_dead_worker(s, "dead")
    cancelled = claimed(sessions, "dead")
    with transaction(sessions) as s:
        jobs.cancel_job(s, cancelled)
        jobs.release_dead_worker(s, "dead")
    with transaction(sessions) as s:
        failed = s.get_one(Job, out_of_attempts)
        assert (failed.status, failed.error) == (
            Status.FAILED,
            "the worker running this job stopped responding on its last attempt, which did not get past the start",
        )
        assert s.get_one(Job, cancelled).status == Status.CANCELLED


# ---------------------------------------------------------------- the processes


@pytest.mark.slow
def test_a_worker_killed_under_the_supervisor_is_restarted_and_its_job_resumes_within_seconds(
    settings: Settings, tmp_path: Path
) -> None:
    # A lease far longer than any wait below: if the job trains again at all, the supervisor took it back at once
    # (the lease never ran out), however slowly a loaded machine restarts the worker.
    settings = settings.model_copy(update={"lease_seconds": LONG_LEASE_SECONDS})
    db = Db(settings, SPEC)
    log = tmp_path / "supervise.log"
    with serving(SUPERVISOR, settings, log, WORKERS="1") as (supervisor, base):
        (worker,) = wait_for(lambda: live_workers(base), 60, "the worker to register")
        assert worker["id"] == f"{socket.gethostname()}-w0"
        job_id = db.submit(seed=5)
        # Past epoch 1's checkpoint and a few steps into epoch 2 (10 steps an epoch): what a resume must not redo.
        db.when(job_id, "epoch 2 to begin", lambda j: j.checkpoint is not None and j.steps_done >= 12)
        watch = HealthWatch(base)
        watch.start()
        try:
            killed = time.monotonic()
            os.kill(worker["pid"], signal.SIGKILL)  # as the OOM killer does: no handler runs
            # The worker logs each start of training (its progress in the database keeps the old run's until then).
            wait_for(lambda: log.read_text().count(f"job {job_id}: training on ") == 2, 300, "the job to train again")
            back_in = time.monotonic() - killed
            assert db.job(job_id).attempts == 2
            job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED, timeout=180)
        finally:
            watch.stop()
        (restarted,) = live_workers(base)
        began = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        stopped_in = time.monotonic() - began
    text = log.read_text()
    assert back_in < LONG_LEASE_SECONDS, f"training again {back_in:.1f} s after the kill: only once the lease ran out"
    died = rf"{worker['id']} \(pid {worker['pid']}\) killed by SIGKILL; its job {job_id} was taken back at once"
    assert re.search(died + r"; restarting it in \d+ s", text)
    assert (restarted["id"], restarted["pid"] != worker["pid"]) == (worker["id"], True)
    assert "resuming after epoch 1" in text
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert [e for e, _ in db.epochs(job_id)] == [1, 2, 3]
    assert watch.answers > 10 and watch.failures == []  # the API answered throughout
    assert stopped_in < STOP_SECONDS


@pytest.mark.slow
def test_the_api_killed_under_the_supervisor_is_restarted(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "supervise.log"
    with serving(SUPERVISOR, settings, log, WORKERS="0") as (supervisor, base):
        (api,) = child_pids(supervisor.pid)  # WORKERS=0: the API alone
        os.kill(api, signal.SIGKILL)

        def answering_again() -> bool:
            try:
                return httpx.get(f"{base}/health", timeout=2).status_code == 200 and child_pids(supervisor.pid) != [api]
            except httpx.HTTPError:
                return False

        wait_for(answering_again, 30, "a new API to answer")
    assert re.search(rf"api \(pid {api}\) killed by SIGKILL; restarting it in 1 s", log.read_text())


@pytest.mark.slow
def test_sigterm_to_the_supervisor_stops_everything_and_the_running_job_goes_back_to_the_queue(
    settings: Settings, tmp_path: Path
) -> None:
    db = Db(settings, SPEC)
    log = tmp_path / "supervise.log"
    with serving(SUPERVISOR, settings, log) as (supervisor, _):
        job_id = db.submit()
        db.when(job_id, "training to start", lambda j: j.status == "running" and j.steps_done >= 2)
        children = child_pids(supervisor.pid)
        assert len(children) == 2  # the API and the worker
        began = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0, log.read_text()
        stopped_in = time.monotonic() - began
    assert stopped_in < STOP_SECONDS, f"stopped in {stopped_in:.1f} s"
    assert not [pid for pid in children if is_running(pid)]
    job = db.job(job_id)
    assert (job.status, job.attempts, job.worker_id) == ("queued", 0, None)
    assert job.checkpoint is not None  # handed back where it was, to resume from there
    assert "handed back to the queue" in log.read_text()


@pytest.mark.slow
def test_one_worker_per_gpu_each_seeing_its_own_and_claiming_its_own_job(settings: Settings, tmp_path: Path) -> None:
    """On a host without CUDA the workers train on the CPU; what is tested is the fan-out and each one's GPU."""
    db = Db(settings, SPEC)
    first, second = db.submit(), db.submit()

    def both_listed(base: str) -> list[dict] | None:
        workers = live_workers(base)
        return workers if len(workers) == 2 else None

    with api_server(settings, tmp_path / "api.log") as base:
        fan = start((*SUPERVISOR, "--gpus", "0,1", "--no-api"), env_for(settings), tmp_path / "gpus.log")
        try:
            for job_id in (first, second):
                db.when(job_id, f"job {job_id} to be claimed", lambda j: j.status == "running", timeout=90)
            workers = wait_for(lambda: both_listed(base), 30, "both workers in /health")
            gpus = {w["id"]: visible_devices(w["pid"]) for w in workers}
            claimed_by = {db.job(first).worker_id, db.job(second).worker_id}
        finally:
            # Two checkpoints of 684 MB written at once, by two workers sharing a small machine's cores and disk.
            assert stop(fan, timeout=90) == 0
    host = socket.gethostname()
    assert gpus == {f"{host}-gpu0": "0", f"{host}-gpu1": "1"}
    assert {w["pid"] for w in workers}.isdisjoint({fan.pid})  # processes of their own
    assert claimed_by == set(gpus)  # each claimed a job of its own
    assert (db.job(first).status, db.job(second).status) == ("queued", "queued")  # both handed back on SIGTERM


def visible_devices(pid: int) -> str | None:
    """CUDA_VISIBLE_DEVICES in the environment process `pid` was started with."""
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v.split(b"=", 1)[1].decode() for v in variables if v.startswith(b"CUDA_VISIBLE_DEVICES=")]
    return found[0] if found else None
