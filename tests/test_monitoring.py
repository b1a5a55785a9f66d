"""`GET /metrics`: what Prometheus scrapes, checked by parsing it as Prometheus does."""

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service import jobs, records, workers
from service.api.app import create_app
from service.db import transaction
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, make_settings, queue_jobs


def scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics, by name and labels."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_count_requests_by_route_template_and_read_the_queue_and_workers(
    client: TestClient, sessions: Sessions
) -> None:
    queue_jobs(sessions, 3, **DEMO)
    with transaction(sessions) as s:
        workers.register_worker(s, "w1", "host", 1, "cpu")
        claim = jobs.claim_next(s, "w1", False, 60, 30)
        assert claim is not None
        workers.touch_worker(s, "w1", claim.job_id)
    with transaction(sessions) as s:
        metric = {"epoch": 1, "train_loss": 2.3, "test_loss": 2.2, "test_accuracy": 0.1, "seconds": 3.0}
        records.record_epoch(s, claim.job_id, claim.token, {**metric, "images_per_second": 170.0})
    client.get("/jobs/1")
    client.get("/jobs/2")
    client.get("/jobs/999")
    client.get("/no/such/path")

    samples = scrape(client)
    requests = "alexnet_jobs_http_requests_total"
    assert samples[(requests, (("method", "GET"), ("route", "/jobs/{job_id}"), ("status", "200")))] == 2
    assert samples[(requests, (("method", "GET"), ("route", "/jobs/{job_id}"), ("status", "404")))] == 1
    assert samples[(requests, (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    latency = "alexnet_jobs_http_request_duration_seconds_count"
    assert samples[(latency, (("method", "GET"), ("route", "/jobs/{job_id}")))] == 3
    assert samples[("alexnet_jobs_jobs", (("status", "queued"),))] == 2
    assert samples[("alexnet_jobs_jobs", (("status", "running"),))] == 1
    assert samples[("alexnet_jobs_workers_alive", ())] == 1
    assert samples[("alexnet_jobs_epochs_completed_total", ())] == 1
    assert samples[("alexnet_jobs_worker_images_per_second", (("worker", "w1"),))] == 170.0


def test_metrics_need_the_token_when_one_is_set(tmp_path: Path, sqlite_url: str) -> None:
    with TestClient(create_app(make_settings(tmp_path, sqlite_url, api_token="s3cret"))) as client:
        assert_error(client.get("/metrics"), 401, "unauthorized")
        assert ("alexnet_jobs_workers_alive", ()) in scrape(client, Authorization="Bearer s3cret")


def test_long_polls_are_counted_but_not_timed(client: TestClient, sessions: Sessions) -> None:
    (job_id,) = queue_jobs(sessions, **DEMO)
    client.post(f"/jobs/{job_id}/cancel")  # finished: a wait answers at once, but it asked to be held
    client.get(f"/jobs/{job_id}", params={"wait": 30})
    client.get(f"/jobs/{job_id}", params={"wait": 0})
    client.get(f"/jobs/{job_id}")

    samples = scrape(client)
    route = (("method", "GET"), ("route", "/jobs/{job_id}"))
    assert samples[("alexnet_jobs_http_requests_total", (*route, ("status", "200")))] == 3
    # Time spent waiting for a job is the job's, not the API's: it would set off latency alerts.
    assert samples[("alexnet_jobs_http_request_duration_seconds_count", route)] == 2
