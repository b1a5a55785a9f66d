"""Claims, leases, fencing and the reaper, on SQLite and on Postgres."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.processes import ROOT, STARTED
from service import jobs, queries, records, workers
from service.config import Settings
from service.db import transaction
from service.models import Job, Status, utcnow
from tests.helpers import Sessions, make_settings, publish_artifact, queue_jobs


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Every scenario here runs on SQLite and on Postgres."""
    return make_settings(tmp_path, database_url)


def claim(
    sessions: Sessions, worker: str = "w", has_cuda: bool = False, lease: float = 30, bf16_native: bool = True
) -> jobs.Claim | None:
    with transaction(sessions) as s:
        return jobs.claim_next(s, worker, has_cuda, lease, alive_seconds=30, bf16_native=bf16_native)


def row(sessions: Sessions, job_id: int) -> Job:
    with transaction(sessions) as s:
        return s.get_one(Job, job_id)


def expire(sessions: Sessions, job_id: int) -> None:
    """Move a lease into the past, as if its worker had gone silent long ago."""
    with transaction(sessions) as s:
        s.get_one(Job, job_id).lease_expires_at = utcnow() - timedelta(seconds=1)


def test_claims_take_the_oldest_job_once_with_a_lease(sessions: Sessions) -> None:
    first, second = queue_jobs(sessions, 2)
    a, b = claim(sessions, "a"), claim(sessions, "b")
    assert a is not None and b is not None
    assert (a.job_id, b.job_id) == (first, second)
    assert a.token != b.token
    assert claim(sessions, "c") is None
    job = row(sessions, first)
    assert (job.status, job.worker_id, job.attempts) == ("running", "a", 1)
    assert job.lease_expires_at is not None and job.lease_expires_at > utcnow()


def test_a_fenced_write_with_a_stale_token_changes_nothing(sessions: Sessions) -> None:
    (job_id,) = queue_jobs(sessions)
    old = claim(sessions)
    assert old is not None
    expire(sessions, job_id)
    with transaction(sessions) as s:
        assert jobs.reap_expired(s) == 1
    new = claim(sessions, "other")
    assert new is not None and new.job_id == job_id and new.attempt == 2
    published = ["a key"]  # what the stale publish would return, were it called
    for write in (
        lambda s: jobs.heartbeat(s, job_id, old.token, 30, 5, 10, 1.0),
        lambda s: records.record_epoch(
            s,
            job_id,
            old.token,
            {"epoch": 1, "train_loss": 1, "test_loss": 1, "test_accuracy": 0, "seconds": 1, "images_per_second": 1},
        ),
        lambda s: records.set_checkpoint(s, job_id, old.token, "x.pt"),
        lambda s: records.record_artifact(s, job_id, old.token, "curves.png", "image/png", 1, lambda: published.pop()),
        lambda s: jobs.finish(s, job_id, old.token, Status.SUCCEEDED),
        lambda s: jobs.hand_back(s, job_id, old.token, None),
    ):
        with pytest.raises(jobs.LeaseLost), transaction(sessions) as s:
            write(s)
    job = row(sessions, job_id)
    assert (job.status, job.lease_token, job.epochs_completed, job.steps_done) == ("running", new.token, 0, 0)
    assert job.checkpoint is None
    assert published == ["a key"]  # the stale worker's file was never made current
    with transaction(sessions) as s:
        assert queries.artifact_rows(s, job_id) == []
        assert list(s.get_one(Job, job_id).metrics) == []


def test_a_stale_worker_never_replaces_the_file_its_successor_published(tmp_path: Path, sessions: Sessions) -> None:
    """Publishing through the store with a lost lease fails before the file is touched, on every backend."""
    settings = make_settings(tmp_path, "sqlite://")  # only the artifact folder is used
    (job_id,) = queue_jobs(sessions)
    old = claim(sessions)
    assert old is not None
    expire(sessions, job_id)
    with transaction(sessions) as s:
        jobs.reap_expired(s)
    new = claim(sessions, "other")
    assert new is not None
    current = publish_artifact(settings, sessions, new, "curves.png", b"the new owner's curves")
    with pytest.raises(jobs.LeaseLost):
        publish_artifact(settings, sessions, old, "curves.png", b"the stale worker's curves")
    assert current.read_bytes() == b"the new owner's curves"


def test_the_reaper_requeues_then_fails_after_max_attempts(sessions: Sessions) -> None:
    (job_id,) = queue_jobs(sessions, max_attempts=2)
    for attempt in (1, 2):
        c = claim(sessions)
        assert c is not None and c.attempt == attempt and c.runs_without_progress == attempt
        expire(sessions, job_id)
        with transaction(sessions) as s:
            assert jobs.reap_expired(s) == 1
    job = row(sessions, job_id)
    assert job.status == "failed"
    assert job.error == (
        "the worker running this job stopped responding on each of its last 2 attempts, none of which got past the "
        "start"
    )
    assert job.finished_at is not None


def test_runs_that_checkpoint_do_not_count_against_max_attempts(sessions: Sessions) -> None:
    (job_id,) = queue_jobs(sessions, max_attempts=2)
    for attempt in (1, 2, 3):  # each run dies, but only after recording a newer checkpoint
        c = claim(sessions)
        assert c is not None and (c.attempt, c.runs_without_progress) == (attempt, 1)
        with transaction(sessions) as s:
            records.set_checkpoint(s, job_id, c.token, f"{c.token[:8]}-e0001-s{attempt:06d}.pt")
        expire(sessions, job_id)
        with transaction(sessions) as s:
            assert jobs.reap_expired(s) == 1
        assert row(sessions, job_id).status == "queued"
    for runs in (1, 2):  # then two that get nowhere
        c = claim(sessions)
        assert c is not None and c.runs_without_progress == runs
        expire(sessions, job_id)
        with transaction(sessions) as s:
            jobs.reap_expired(s)
    job = row(sessions, job_id)
    assert (job.status, job.attempts) == ("failed", 5)
    assert job.error is not None and job.error.endswith("none of which got past epoch 1, step 3")


def test_a_live_lease_is_never_reaped(sessions: Sessions) -> None:
    (job_id,) = queue_jobs(sessions)
    c = claim(sessions, lease=1)
    assert c is not None
    for _ in range(10):  # a healthy job renewed many times over its lease length
        with transaction(sessions) as s:
            jobs.heartbeat(s, job_id, c.token, 1, 1, 10, None)
            assert jobs.reap_expired(s, now=utcnow() + timedelta(seconds=0.5)) == 0
    assert row(sessions, job_id).status == "running"


def test_an_expired_job_with_a_cancel_request_ends_cancelled(sessions: Sessions) -> None:
    (job_id,) = queue_jobs(sessions)
    assert claim(sessions) is not None
    with transaction(sessions) as s:
        jobs.cancel_job(s, job_id)
    expire(sessions, job_id)
    with transaction(sessions) as s:
        jobs.reap_expired(s)
    assert row(sessions, job_id).status == "cancelled"


def test_hand_back_requeues_and_returns_the_attempt(sessions: Sessions) -> None:
    (job_id,) = queue_jobs(sessions)
    c = claim(sessions)
    assert c is not None
    with transaction(sessions) as s:
        jobs.hand_back(s, job_id, c.token, "abc.pt")
    job = row(sessions, job_id)
    assert (job.status, job.attempts, job.checkpoint, job.lease_token) == ("queued", 0, "abc.pt", None)
    again = claim(sessions)
    assert again is not None and again.checkpoint == "abc.pt" and again.attempt == 1


def test_cpu_workers_leave_cuda_jobs_to_a_live_cuda_worker(sessions: Sessions) -> None:
    cuda_job, cpu_job = queue_jobs(sessions)[0], queue_jobs(sessions, device="cpu")[0]
    with transaction(sessions) as s:
        s.get_one(Job, cuda_job).device_request = "cuda"
        workers.register_worker(s, "gpu-worker", "h", 1, "cuda (H200)")
    c = claim(sessions, "cpu-worker")
    assert c is not None and c.job_id == cpu_job
    assert claim(sessions, "cpu-worker") is None
    with transaction(sessions) as s:
        workers.worker_stopped(s, "gpu-worker")
    c = claim(sessions, "cpu-worker")  # no CUDA worker alive: take it, so it fails visibly instead of waiting
    assert c is not None and c.job_id == cuda_job


def test_workers_without_native_bf16_leave_bf16_jobs_to_a_live_worker_that_has_it(sessions: Sessions) -> None:
    bf16_job, auto_job = queue_jobs(sessions, precision="bf16")[0], queue_jobs(sessions)[0]
    with transaction(sessions) as s:
        workers.register_worker(s, "avx512-worker", "h", 1, "cpu", bf16_native=True)
    c = claim(sessions, "avx2-worker", bf16_native=False)
    assert c is not None and c.job_id == auto_job
    assert claim(sessions, "avx2-worker", bf16_native=False) is None
    with transaction(sessions) as s:
        workers.worker_stopped(s, "avx512-worker")
    c = claim(sessions, "avx2-worker", bf16_native=False)  # none alive: take it, so it fails visibly
    assert c is not None and c.job_id == bf16_job


def test_a_worker_with_native_bf16_takes_bf16_jobs_in_queue_order(sessions: Sessions) -> None:
    bf16_job, auto_job = queue_jobs(sessions, precision="bf16")[0], queue_jobs(sessions)[0]
    with transaction(sessions) as s:
        workers.register_worker(s, "avx512-worker", "h", 1, "cpu", bf16_native=True)
    first, second = claim(sessions, "avx512-worker"), claim(sessions, "avx512-worker")
    assert first is not None and second is not None
    assert [first.job_id, second.job_id] == [bf16_job, auto_job]


@pytest.mark.slow
def test_eight_processes_racing_claim_each_job_exactly_once(
    database_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    ids = queue_jobs(sessions, 300)
    outs = [tmp_path / f"racer-{i}.txt" for i in range(8)]
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.racer", database_url, str(out)], cwd=ROOT, stderr=subprocess.PIPE
        )
        for out in outs
    ]
    STARTED.extend(racers)
    errors = [r.communicate(timeout=240)[1].decode() for r in racers]
    assert [r.returncode for r in racers] == [0] * 8, errors
    assert not any("locked" in e for e in errors), errors
    claimed = [int(line) for out in outs for line in out.read_text().split()]
    assert sorted(claimed) == sorted(ids)  # every job once: none twice, none missed
    assert sum(1 for out in outs if out.read_text()) > 1  # the claims really were spread over processes
    with transaction(sessions) as s:
        statuses = set(s.scalars(select(Job.status)))
    assert statuses == {"succeeded"}
