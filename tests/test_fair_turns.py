"""Fair turns between people: a free worker takes the oldest queued job of whoever runs fewest jobs, and between
equals, of whoever has waited longest; still one atomic claim, on SQLite and Postgres, and with real workers."""

from pathlib import Path

from bench import claim as claim_bench
from bench.processes import start_worker, stop, wait_for
from service import jobs
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Job, Status
from service.spec import JobSpec
from tests.helpers import Sessions, make_settings

# One step of 8 images at AlexNet's smallest size: seconds a job on two busy cores.
TINY = {"dataset": "synthetic", "epochs": 1, "image_size": 63, "batch_size": 8, "train_samples": 8, "test_samples": 8}


def queue(sessions: Sessions, owner: str | None, n: int = 1) -> list[int]:
    """`n` tiny jobs of `owner`, queued as POST /jobs queues them; their ids, oldest first."""
    with transaction(sessions) as s:
        return [jobs.create_job(s, JobSpec.model_validate(TINY), owner=owner).id for _ in range(n)]


def claim(sessions: Sessions, worker: str = "w1") -> int:
    with transaction(sessions) as s:
        claimed = jobs.claim_next(s, worker, has_cuda=False, lease_seconds=60, alive_seconds=30)
    assert claimed is not None
    return claimed.job_id


def finish(sessions: Sessions, job_id: int) -> None:
    with transaction(sessions) as s:
        token = s.get_one(Job, job_id).lease_token
        assert token is not None
        jobs.finish(s, job_id, token, Status.SUCCEEDED)


def sessions_for(url: str) -> Sessions:
    return make_sessionmaker(make_engine(url))


def test_with_one_worker_a_later_persons_first_job_runs_second(database_url: str) -> None:
    sessions = sessions_for(database_url)
    a = queue(sessions, "ann", 10)
    (b,) = queue(sessions, "bob")
    order = []
    for _ in range(3):
        order.append(claim(sessions))
        finish(sessions, order[-1])
    assert order == [a[0], b, a[1]]


def test_several_workers_take_one_job_of_each_person_before_a_second_of_anyone(database_url: str) -> None:
    sessions = sessions_for(database_url)
    a = queue(sessions, "ann", 3)
    (b,) = queue(sessions, "bob")
    (c,) = queue(sessions, "cat")
    taken = [claim(sessions, f"w{i}") for i in range(5)]
    assert taken == [a[0], b, c, a[1], a[2]]


def test_jobs_of_nobody_on_an_open_service_are_first_come_first_served(database_url: str) -> None:
    sessions = sessions_for(database_url)
    queued = queue(sessions, None, 4)
    taken = []
    for _ in range(4):
        taken.append(claim(sessions))
        if len(taken) % 2:
            finish(sessions, taken[-1])
    assert taken == queued


def test_a_real_worker_runs_bobs_one_job_right_after_anns_first(tmp_path: Path, database_url: str) -> None:
    settings: Settings = make_settings(tmp_path, database_url)
    sessions = sessions_for(settings.database_url)
    a = queue(sessions, "ann", 10)
    (b,) = queue(sessions, "bob")
    worker = start_worker(settings, tmp_path / "worker.log")
    try:

        def bob_done() -> bool:
            with transaction(sessions) as s:
                return s.get_one(Job, b).status == Status.SUCCEEDED

        wait_for(bob_done, 600, "bob's job to be trained")
    finally:
        stop(worker)
    with transaction(sessions) as s:
        started = s.query(Job.id).filter(Job.started_at.is_not(None)).order_by(Job.started_at).all()
    assert [row.id for row in started][:2] == [a[0], b]


def test_the_claim_benchmark_claims_over_a_thousand_jobs_of_thirty_people(tmp_path: Path) -> None:
    with claim_bench.sqlite_url(tmp_path / "bench") as url:
        took = claim_bench.measure(url, claims=3)
        engine = make_engine(url)
        with transaction(make_sessionmaker(engine)) as s:
            owners = {o for (o,) in s.query(Job.owner).filter(Job.status == Status.RUNNING)}
        engine.dispose()
    assert len(took) == 3 and all(t > 0 for t in took)
    assert len(owners) == 3  # three claims, three people: the fair order at work on the benchmark's queue
