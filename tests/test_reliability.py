"""A broken database connection is not the job's fault: real workers and a real API on PostgreSQL, through a proxy
that resets, refuses and stalls their connections."""

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.processes import api_server, start_worker, stop, wait_for
from service.config import Settings
from service.models import FINISHED
from tests.dbproxy import Proxy, proxy_to
from tests.helpers import LIGHT_JOB, Db, assert_error, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# Trains in a few seconds on 2 cores; on the CPU even where a GPU is present, so that a test can act mid-job.
SPEC = LIGHT_JOB  # 10 steps an epoch


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[Proxy]:
    with proxy_to(postgres_url) as p:
        yield p


def through(proxy: Proxy, postgres_url: str, tmp_path: Path) -> Settings:
    """Settings whose processes reach the database through `proxy`: short leases, and a database that has not
    answered within 2 s counts as away."""
    return make_settings(
        tmp_path,
        proxy.url(postgres_url),
        lease_seconds=4.0,
        heartbeat_seconds=0.5,
        worker_alive_seconds=5.0,
        db_timeout_seconds=2.0,
    )


def test_a_connection_reset_mid_transaction_is_retried_and_the_job_succeeds_at_its_first_attempt(
    proxy: Proxy, postgres_url: str, tmp_path: Path
) -> None:
    settings = through(proxy, postgres_url, tmp_path)
    db = Db(make_settings(tmp_path, postgres_url), SPEC)  # the test's own view, not through the proxy
    job_id = db.submit(epochs=2)
    # Epoch 1's record starts by clearing rows a previous attempt may have left: the reset lands inside it.
    proxy.reset_on(b"DELETE FROM epoch_metrics")
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED, timeout=120)
    finally:
        assert stop(worker) == 0
    assert proxy.resets == 1
    assert (job.status, job.error, job.attempts) == ("succeeded", None, 1)
    assert [e for e, _ in db.epochs(job_id)] == [1, 2]
    text = log.read_text()
    assert f"job {job_id}: recording epoch 1: database unavailable" in text
    assert "the database is back" in text


def test_an_outage_longer_than_the_lease_costs_no_attempt_and_training_goes_on_when_the_database_returns(
    proxy: Proxy, postgres_url: str, tmp_path: Path
) -> None:
    settings = through(proxy, postgres_url, tmp_path)
    db = Db(make_settings(tmp_path, postgres_url), SPEC)
    job_id = db.submit(epochs=3)
    owner = start_worker(settings, tmp_path / "owner.log")
    db.when(job_id, "epoch 1 to be recorded", lambda j: j.epochs_completed >= 1, timeout=120)
    # A second, idle worker: it reaps expired leases on every pass, and every lease expires during the outage.
    idle = start_worker(settings, tmp_path / "idle.log")
    wait_for(lambda: "ready on" in (tmp_path / "idle.log").read_text(), 60, "the second worker to start")

    proxy.refuse()
    outage = 3 * settings.lease_seconds
    time.sleep(outage)
    steps_before = db.job(job_id).steps_done
    proxy.restore()
    back = time.monotonic()

    db.when(job_id, "training to go on", lambda j: j.steps_done > steps_before or j.status in FINISHED, timeout=15)
    assert time.monotonic() - back < 15
    try:
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED, timeout=120)
    finally:
        assert stop(owner) == 0
        assert stop(idle) == 0
    assert (job.status, job.error, job.attempts) == ("succeeded", None, 1)
    assert [e for e, _ in db.epochs(job_id)] == [1, 2, 3]
    assert "database unavailable" in (tmp_path / "owner.log").read_text()
    assert "took back" not in (tmp_path / "idle.log").read_text()


def test_a_stalled_database_gets_503_with_retry_after_within_seconds_and_stores_nothing_it_refused(
    proxy: Proxy, postgres_url: str, tmp_path: Path
) -> None:
    settings = through(proxy, postgres_url, tmp_path)
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=30) as client:
        first = client.post("/jobs", json=SPEC)
        assert first.status_code == 201
        proxy.stall()

        def timed(method: str, path: str) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = client.request(method, path, json=SPEC if method == "POST" else None)
            return response, time.monotonic() - started

        requests = [("GET", "/jobs"), ("GET", f"/jobs/{first.json()['id']}"), ("GET", "/health")]
        requests += [("POST", "/jobs")] * 3
        with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(lambda r: timed(*r), requests))
        for (method, path), (response, seconds) in zip(requests, answers, strict=True):
            assert_error(response, 503, "database_unavailable")
            assert response.headers["Retry-After"].isdigit(), (method, path)
            assert seconds < settings.db_timeout_seconds + 3, (method, path, seconds)

        proxy.restore()
        listed = wait_for(
            lambda: (r := client.get("/jobs")).status_code == 200 and r.json(), 30, "the API to answer again"
        )
        assert [j["id"] for j in listed["items"]] == [first.json()["id"]]  # none of the refused POSTs was stored

        proxy.refuse()
        started = time.monotonic()
        assert_error(client.get("/jobs"), 503, "database_unavailable")
        assert time.monotonic() - started < settings.db_timeout_seconds + 3
        proxy.restore()
    assert "Traceback" not in (tmp_path / "api.log").read_text()


def test_a_worker_waits_out_a_stalled_database_says_so_and_the_job_goes_on(
    proxy: Proxy, postgres_url: str, tmp_path: Path
) -> None:
    settings = through(proxy, postgres_url, tmp_path)
    db = Db(make_settings(tmp_path, postgres_url), SPEC)
    job_id = db.submit(epochs=2)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        db.when(job_id, "training to start", lambda j: j.steps_done > 0, timeout=120)
        proxy.stall()
        time.sleep(2 * settings.lease_seconds)  # open connections, and not a byte through
        proxy.restore()
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED, timeout=120)
    finally:
        assert stop(worker) == 0
    assert (job.status, job.error, job.attempts) == ("succeeded", None, 1)
    assert f"job {job_id}: the database has not answered a heartbeat for" in log.read_text()
