"""Jobs over the HTTP API against a real, migrated database: submit, validate, list, cancel, wait, idempotency."""

import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import jobs
from service.api.routes import events as events_route
from service.config import Settings
from service.db import transaction
from service.models import Status
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, make_settings, total_jobs


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The API tests run on SQLite and on Postgres."""
    return make_settings(tmp_path, database_url)


def claim_next(sessions: Sessions) -> jobs.Claim:
    """Claim the oldest queued job, as a worker would."""
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w1", False, 30, 30)
    assert claim is not None
    return claim


def test_submit_returns_201_with_location_and_the_fully_resolved_spec(client: TestClient) -> None:
    response = client.post("/jobs", json={"epochs": 2})
    assert response.status_code == 201
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["spec"] == {
        "epochs": 2,
        "batch_size": 512,
        "optimizer": "adam",
        "learning_rate": 1e-4,
        "image_size": 224,
        "dataset": "cifar10",
        "train_samples": None,
        "test_samples": None,
        "seed": 0,
        "device": "auto",
        "precision": "auto",
        "conv2_filter": 0,
        "max_attempts": 3,
        "max_runtime_seconds": None,
        "name": None,
    }
    assert job["progress"] == {
        "epochs_completed": 0,
        "epochs_total": 2,
        "steps_done": 0,
        "steps_total": None,
        "fraction": 0.0,
        "eta_seconds": None,
        "updated_at": None,
    }
    assert job["links"]["curves"] == f"/jobs/{job['id']}/curves.png"
    # The same job, read back; only the POST's answer says how long it should take.
    assert client.get(f"/jobs/{job['id']}").json() == {**job, "estimate": None}
    assert job["estimate"]["warning"] == "no worker is running: the job waits in the queue until one starts"


def test_submit_without_a_body_queues_the_defaults(client: TestClient) -> None:
    response = client.post("/jobs")
    assert response.status_code == 201
    assert response.json()["spec"]["epochs"] == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 10**9}, "epochs"),
        ({"epochs": "5"}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": 4097}, "batch_size"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": 2}, "learning_rate"),
        ({"image_size": 62}, "image_size"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"train_samples": 50_001}, "train_samples"),
        ({"test_samples": 0}, "test_samples"),
        ({"device": "tpu"}, "device"),
        ({"conv2_filter": 192}, "conv2_filter"),
        ({"seed": -1}, "seed"),
        ({"name": "x" * 201}, "name"),
        ({"epochs": True}, "epochs"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_specs_get_422_naming_the_field_and_create_nothing(client: TestClient, body: dict, field: str) -> None:
    error = assert_error(client.post("/jobs", json=body), 422, "invalid_request")
    assert any(field in d["loc"] for d in error["details"]), error
    assert total_jobs(client) == 0


@pytest.mark.parametrize("raw", [b"{", b"not json", b"[1, 2]", b'"epochs"', b'{"epochs": 2,}'])
def test_broken_json_gets_422(client: TestClient, raw: bytes) -> None:
    response = client.post("/jobs", content=raw, headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request")
    assert total_jobs(client) == 0


def test_swagger_shows_a_working_example_for_post_jobs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    example = body["examples"]["quick synthetic demo"]["value"]
    assert example == DEMO
    assert client.post("/jobs", json=example).status_code == 201


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(client: TestClient) -> None:
    key = {"Idempotency-Key": "abc-123"}
    first = client.post("/jobs", json=DEMO, headers=key)
    again = client.post("/jobs", json=DEMO, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert total_jobs(client) == 1
    assert_error(client.post("/jobs", json={**DEMO, "epochs": DEMO["epochs"] + 1}, headers=key), 409, "conflict")
    assert total_jobs(client) == 1


def test_list_is_newest_first_with_filter_paging_and_total(client: TestClient) -> None:
    ids = [client.post("/jobs", json={"name": f"job {i}"}).json()["id"] for i in range(5)]
    client.post(f"/jobs/{ids[1]}/cancel")
    page = client.get("/jobs", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5
    assert [j["id"] for j in page["items"]] == [ids[3], ids[2]]
    cancelled = client.get("/jobs", params={"status": "cancelled"}).json()
    assert [j["id"] for j in cancelled["items"]] == [ids[1]]
    assert cancelled["total"] == 1
    assert_error(client.get("/jobs", params={"limit": 101}), 422, "invalid_request")
    assert_error(client.get("/jobs", params={"status": "sleeping"}), 422, "invalid_request")


def test_cancel_queued_is_immediate_and_idempotent(client: TestClient) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    first = client.post(f"/jobs/{job_id}/cancel")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert first.json()["finished_at"] is not None
    again = client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 200
    assert again.json() == first.json()


def test_cancel_running_asks_the_worker_and_cancel_finished_is_409(client: TestClient, sessions: Sessions) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    claim = claim_next(sessions)
    assert claim.job_id == job_id
    response = client.post(f"/jobs/{job_id}/cancel")
    assert response.json()["status"] == "running"
    assert response.json()["cancel_requested"] is True
    with transaction(sessions) as s:
        jobs.finish(s, job_id, claim.token, Status.SUCCEEDED)
    error = assert_error(client.post(f"/jobs/{job_id}/cancel"), 409, "conflict")
    assert "succeeded" in error["message"]


def test_get_with_wait_answers_as_soon_as_the_job_finishes(client: TestClient, sessions: Sessions) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]

    def cancel_soon() -> None:
        time.sleep(1.0)
        with transaction(sessions) as s:
            jobs.cancel_job(s, job_id)

    canceller = threading.Thread(target=cancel_soon)
    started = time.monotonic()
    canceller.start()
    job = client.get(f"/jobs/{job_id}", params={"wait": 60}).json()
    waited = time.monotonic() - started
    canceller.join()
    assert job["status"] == "cancelled"
    assert 1.0 <= waited < 10


def test_get_with_wait_gives_up_after_wait_seconds_and_a_finished_job_answers_at_once(client: TestClient) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    started = time.monotonic()
    assert client.get(f"/jobs/{job_id}", params={"wait": 0.6}).json()["status"] == "queued"
    assert 0.6 <= time.monotonic() - started < 5
    client.post(f"/jobs/{job_id}/cancel")
    started = time.monotonic()
    assert client.get(f"/jobs/{job_id}", params={"wait": 60}).json()["status"] == "cancelled"
    assert time.monotonic() - started < 1
    assert_error(client.get(f"/jobs/{job_id}", params={"wait": 601}), 422, "invalid_request")


def test_metrics_start_empty_in_json_and_csv(client: TestClient) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    assert client.get(f"/jobs/{job_id}/metrics").json() == {
        "job_id": job_id,
        "status": "queued",
        "epochs": [],
    }
    csv = client.get(f"/jobs/{job_id}/metrics", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text == "epoch,train_loss,test_loss,test_accuracy,seconds,images_per_second\n"


def test_a_progress_event_shows_the_progress_get_jobs_shows(client: TestClient, sessions: Sessions) -> None:
    """The stream and the job's own page compute the fraction the same way: 3 of 10 steps is 0.3 on both."""
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    claim = claim_next(sessions)
    with transaction(sessions) as s:
        jobs.heartbeat(s, job_id, claim.token, 30, steps_done=3, steps_total=10, eta_seconds=7.0)
    shown = client.get(f"/jobs/{job_id}").json()["progress"]
    with transaction(sessions) as s:
        sent = [e for e in events_route.poll(s, 0, job_id).sent if e.event == "progress"]
    assert [e.data["progress"] for e in sent] == [{**shown, "updated_at": datetime.fromisoformat(shown["updated_at"])}]
    assert (shown["fraction"], shown["steps_done"], shown["eta_seconds"]) == (0.3, 3, 7.0)
