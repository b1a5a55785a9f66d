"""A fleet on one PostgreSQL: every job runs exactly once; idle workers are woken, not polling; a finished job's
superseded progress events are compacted; a large list's total is counted in the background."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bench.fleet_workers import Fleet
from bench.processes import wait_for
from service import events, jobs
from service.api import counts
from service.api.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.events import Kind
from service.models import Job, JobEvent, Status
from service.wakeup import IDLE_POLL_SECONDS, Wakeups
from tests.helpers import Sessions, make_settings, queue_jobs


@pytest.fixture
def pg_settings(tmp_path: Path, postgres_url: str) -> Settings:
    return make_settings(tmp_path, postgres_url)


@pytest.fixture
def pg_sessions(pg_settings: Settings) -> Iterator[Sessions]:
    engine = make_engine(pg_settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def event_counts(sessions: Sessions, kind: str) -> dict[int, int]:
    with transaction(sessions) as s:
        query = select(JobEvent.job_id, func.count()).where(JobEvent.kind == kind).group_by(JobEvent.job_id)
        return {job_id: n for job_id, n in s.execute(query)}


@pytest.mark.postgres
@pytest.mark.slow
def test_a_fleet_of_20_runs_each_of_200_jobs_exactly_once(pg_settings: Settings, pg_sessions: Sessions) -> None:
    queued = queue_jobs(pg_sessions, 200, dataset="synthetic")
    fleet = Fleet(pg_settings, 20, epoch_seconds=0.6, epochs=1, connections=8, name="test")
    fleet.start()
    try:

        def all_done() -> bool:
            assert not fleet.errors, fleet.errors
            with transaction(pg_sessions) as s:
                return not s.scalar(select(func.count()).where(Job.status != Status.SUCCEEDED))

        wait_for(all_done, 600, "the fleet to run all 200 jobs", interval=1.0)
    finally:
        fleet.stop()
    assert sorted(fleet.runs) == queued
    assert set(fleet.runs.values()) == {1}, "a job was claimed twice"
    with transaction(pg_sessions) as s:
        assert {j.attempts for j in s.scalars(select(Job))} == {1}
    assert event_counts(pg_sessions, Kind.END) == dict.fromkeys(queued, 1)
    assert event_counts(pg_sessions, Kind.EPOCH) == dict.fromkeys(queued, 1)
    # Each heartbeat wrote one (0.5 s beats in a 0.6 s epoch); once finished, each job keeps only its last.
    assert set(event_counts(pg_sessions, Kind.PROGRESS).values()) <= {1}


@pytest.mark.postgres
def test_a_queued_job_wakes_a_listening_worker(pg_settings: Settings, pg_sessions: Sessions) -> None:
    wakeups = Wakeups(pg_settings.database_url)
    wakeups.start()
    try:
        wait_for(lambda: wakeups.listening, 60, "the wake-ups to listen")
        assert wakeups.interval(0.2, 60) == IDLE_POLL_SECONDS  # polling is only the fallback now
        seen = wakeups.seen()
        queue_jobs(pg_sessions, 1)
        wakeups.wait(120, since=seen)  # returns on the notification; the generous timeout is only a bound
        assert wakeups.seen() > seen
    finally:
        wakeups.stop()
    assert not wakeups.listening


def test_on_sqlite_an_idle_worker_polls(settings: Settings) -> None:
    wakeups = Wakeups(settings.database_url)
    wakeups.start()  # nothing to listen to
    assert not wakeups.listening and wakeups.interval(0.2, 60) == 0.2
    wakeups.stop()


def test_a_finished_job_keeps_its_last_progress_event_and_all_else(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    (job_id,) = queue_jobs(sessions, 1)
    (other,) = queue_jobs(sessions, 1)
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w", False, 30, 30)
        second = jobs.claim_next(s, "v", False, 30, 30)
    assert claim is not None and second is not None
    for steps in (1, 2, 3):
        with transaction(sessions) as s:
            jobs.heartbeat(s, claim.job_id, claim.token, 30, steps, 3, 1.0)
            jobs.heartbeat(s, second.job_id, second.token, 30, steps, 3, 1.0)
            events.emit_logs(s, claim.job_id, [f"line {steps}"])
    with transaction(sessions) as s:
        jobs.finish(s, claim.job_id, claim.token, Status.SUCCEEDED)
    with transaction(sessions) as s:
        kept = [(e.kind, e.data) for e in s.scalars(select(JobEvent).where(JobEvent.job_id == job_id))]
    progress = [data for kind, data in kept if kind == Kind.PROGRESS]
    assert len(progress) == 1 and progress[0]["steps_done"] == 3
    assert [kind for kind, _ in kept].count(Kind.LOG) == 3
    assert [data["status"] for kind, data in kept if kind == Kind.STATUS] == ["queued", "running", "succeeded"]
    assert event_counts(sessions, Kind.PROGRESS)[other] == 3  # still running: untouched
    engine.dispose()


def test_a_large_list_is_counted_in_the_background(
    settings: Settings, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(counts, "LARGE", 3)
    monkeypatch.setattr(counts, "FRESH_SECONDS", 0.0)
    queue_jobs(sessions, 4)
    with TestClient(create_app(settings)) as client:
        assert client.get("/jobs").json()["total"] == 4
        queue_jobs(sessions, 1)
        assert client.get("/jobs").json()["total"] == 4  # the last count, while a new one is made
        wait_for(lambda: client.get("/jobs").json()["total"] == 5, 60, "the recount")
        assert len(client.get("/jobs").json()["items"]) == 5
