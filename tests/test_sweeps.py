"""Sweeps and reruns through the API on a real, migrated database: a grid queued as jobs, validated as POST /jobs
validates a spec; listing, filtering, cancelling; a job queued again with or without changes."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import jobs, records
from service.config import Settings
from service.db import transaction
from service.models import Status
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, make_settings, total_jobs

GRID = {"optimizer": ["adam", "sgd"], "learning_rate": [0.001, 0.0001]}
SWEEP = {"name": "optimizers", "base": DEMO, "grid": GRID}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """These run on SQLite and on Postgres."""
    return make_settings(tmp_path, database_url)


def test_a_sweep_queues_the_cartesian_product_over_the_base(client: TestClient) -> None:
    response = client.post("/sweeps", json=SWEEP)
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert response.headers["location"] == f"/sweeps/{sweep['id']}"
    assert (sweep["name"], sweep["grid"], sweep["finished"]) == ("optimizers", GRID, False)
    assert sweep["counts"] == {"queued": 4, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert [(j["params"], j["label"]) for j in sweep["jobs"]] == [
        ({"optimizer": "adam", "learning_rate": 0.001}, "adam lr 1e-3"),
        ({"optimizer": "adam", "learning_rate": 0.0001}, "adam lr 1e-4"),
        ({"optimizer": "sgd", "learning_rate": 0.001}, "sgd lr 1e-3"),
        ({"optimizer": "sgd", "learning_rate": 0.0001}, "sgd lr 1e-4"),
    ]
    assert sweep["leaderboard"] == []  # no job has finished an epoch
    for entry in sweep["jobs"]:
        job = client.get(entry["url"]).json()
        assert job["sweep_id"] == sweep["id"]
        assert job["links"]["sweep"] == f"/sweeps/{sweep['id']}"
        # Each job is the base spec with its grid values, every other field resolved as POST /jobs resolves it.
        # Named by the sweep and its values, which is how the dashboard's lists show it.
        named = {**DEMO, **entry["params"], "name": f"optimizers · {entry['label']}"}
        expected = client.post("/jobs", json=named).json()["spec"]
        assert job["spec"] == expected
    assert client.get(f"/sweeps/{sweep['id']}").json() == sweep


def test_each_grid_value_is_validated_and_an_invalid_combination_is_named(client: TestClient) -> None:
    body = {"base": DEMO, "grid": {"optimizer": ["adam", "sgd"], "learning_rate": [0.001, 2.0]}}
    error = assert_error(client.post("/sweeps", json=body), 422, "invalid_request")
    assert 'optimizer="adam", learning_rate=2.0' in error["message"]
    assert error["details"][0]["loc"] == ["body", "grid", "learning_rate"]
    assert "less than or equal to 1" in error["details"][0]["msg"]
    # Strict as POST /jobs: a string is not a number there, nor here.
    error = assert_error(client.post("/sweeps", json={"grid": {"epochs": [1, "2"]}}), 422, "invalid_request")
    assert 'epochs="2"' in error["message"]
    assert total_jobs(client) == 0 and client.get("/sweeps").json()["total"] == 0


@pytest.mark.parametrize(
    ("grid", "words"),
    [
        ({"optimiser": ["adam"], "colour": ["red"]}, "'optimiser', 'colour' are not"),
        ({"seed": list(range(9)), "epochs": list(range(1, 9))}, "9 × 8 = 72 jobs; a sweep queues at most 64"),
        ({"seed": []}, "grid.seed is empty"),
        ({"seed": [1, 1]}, "grid.seed repeats a value"),
    ],
)
def test_unknown_fields_empty_or_repeated_values_and_over_64_jobs_get_422(
    client: TestClient, grid: dict[str, list[object]], words: str
) -> None:
    error = assert_error(client.post("/sweeps", json={"base": DEMO, "grid": grid}), 422, "invalid_request")
    assert words in error["message"]
    assert total_jobs(client) == 0


def test_exactly_64_jobs_is_allowed(client: TestClient) -> None:
    response = client.post(
        "/sweeps", json={"base": DEMO, "grid": {"seed": list(range(8)), "epochs": list(range(1, 9))}}
    )
    assert response.status_code == 201, response.text
    assert len(response.json()["jobs"]) == total_jobs(client) == 64


def test_an_invalid_base_is_refused_like_a_job_spec(client: TestClient) -> None:
    error = assert_error(client.post("/sweeps", json={"base": {"epochs": 0}, "grid": GRID}), 422, "invalid_request")
    assert error["details"][0]["loc"] == ["body", "base", "epochs"]
    assert total_jobs(client) == 0


def test_idempotency_key_returns_the_same_sweep_and_refuses_another_body(client: TestClient) -> None:
    key = {"Idempotency-Key": "sweep-1"}
    first = client.post("/sweeps", json=SWEEP, headers=key)
    again = client.post("/sweeps", json=SWEEP, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert total_jobs(client) == 4
    other = {**SWEEP, "grid": {"optimizer": ["sgd"]}}
    assert_error(client.post("/sweeps", json=other, headers=key), 409, "conflict")
    assert total_jobs(client) == 4


def test_sweeps_are_listed_newest_first_and_jobs_filter_by_sweep(client: TestClient) -> None:
    lone = client.post("/jobs", json=DEMO).json()["id"]
    first = client.post("/sweeps", json=SWEEP).json()
    second = client.post("/sweeps", json={"base": DEMO, "grid": {"seed": [1, 2]}}).json()
    listed = client.get("/sweeps").json()
    assert listed["total"] == 2
    assert [(s["id"], s["jobs_total"], s["counts"]["queued"]) for s in listed["items"]] == [
        (second["id"], 2, 2),
        (first["id"], 4, 4),
    ]
    assert client.get("/sweeps", params={"limit": 1, "offset": 1}).json()["items"][0]["id"] == first["id"]
    page = client.get("/jobs", params={"sweep_id": second["id"]}).json()
    assert page["total"] == 2
    assert sorted(j["id"] for j in page["items"]) == sorted(j["id"] for j in second["jobs"])
    assert client.get("/jobs/" + str(lone)).json()["sweep_id"] is None
    assert client.get("/jobs", params={"sweep_id": 10**6}).json()["total"] == 0
    assert_error(client.get("/sweeps/999999"), 404, "not_found")


def test_cancelling_a_sweep_cancels_what_is_left_and_keeps_what_finished(
    client: TestClient, sessions: Sessions
) -> None:
    sweep = client.post("/sweeps", json=SWEEP).json()
    with transaction(sessions) as s:  # the first job has succeeded, the second is running
        done = jobs.claim_next(s, "w1", False, 30, 30)
        running = jobs.claim_next(s, "w1", False, 30, 30)
    assert done is not None and running is not None
    with transaction(sessions) as s:
        jobs.finish(s, done.job_id, done.token, Status.SUCCEEDED)
    cancelled = client.post(f"/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    statuses = {
        j["id"]: (j["status"], client.get(j["url"]).json()["cancel_requested"]) for j in cancelled.json()["jobs"]
    }
    first, second, third, fourth = (j["id"] for j in sweep["jobs"])
    assert statuses == {
        first: ("succeeded", False),
        second: ("running", True),  # its worker stops it within a step
        third: ("cancelled", True),
        fourth: ("cancelled", True),
    }
    again = client.post(f"/sweeps/{sweep['id']}/cancel")
    assert again.json()["counts"] == cancelled.json()["counts"]  # repeating it is harmless
    assert_error(client.post("/sweeps/999999/cancel"), 404, "not_found")


def test_the_leaderboard_ranks_jobs_by_latest_test_accuracy(client: TestClient, sessions: Sessions) -> None:
    sweep = client.post("/sweeps", json=SWEEP).json()
    with transaction(sessions) as s:
        claims = [jobs.claim_next(s, "w1", False, 30, 30) for _ in range(3)]
    for claim, accuracies in zip(claims, ([0.5, 0.6], [0.9], [0.1, 0.7]), strict=True):
        assert claim is not None
        for epoch, accuracy in enumerate(accuracies, start=1):
            with transaction(sessions) as s:
                metric = {"epoch": epoch, "train_loss": 1.0, "test_loss": 1 - accuracy, "test_accuracy": accuracy}
                records.record_epoch(s, claim.job_id, claim.token, {**metric, "seconds": 1.0, "images_per_second": 1.0})
    board = client.get(f"/sweeps/{sweep['id']}").json()
    ids = [j["id"] for j in sweep["jobs"]]
    assert [(e["rank"], e["job_id"], e["epoch"], e["test_accuracy"]) for e in board["leaderboard"]] == [
        (1, ids[1], 1, 0.9),
        (2, ids[2], 2, 0.7),
        (3, ids[0], 2, 0.6),
    ]
    assert board["leaderboard"][0]["label"] == "adam lr 1e-4"
    assert [j["test_accuracy"] for j in board["jobs"]] == [0.6, 0.9, 0.7, None]
    # The comparison links name the best jobs first, then those with no epoch yet.
    assert board["links"]["compare"] == f"/compare?ids={ids[1]},{ids[2]},{ids[0]},{ids[3]}"
    assert board["links"]["compare_test_accuracy_png"].startswith(f"/compare.png?ids={ids[1]},")


# ---------------------------------------------------------------- rerun


def test_rerun_queues_the_same_spec_again(client: TestClient) -> None:
    original = client.post("/jobs", json={**DEMO, "name": "first try"}).json()
    response = client.post(f"/jobs/{original['id']}/rerun")
    assert response.status_code == 201, response.text
    rerun = response.json()
    assert response.headers["location"] == f"/jobs/{rerun['id']}"
    assert rerun["id"] != original["id"]
    assert (rerun["status"], rerun["spec"]) == ("queued", original["spec"])
    assert client.post(f"/jobs/{original['id']}/rerun", json={}).json()["spec"] == original["spec"]
    assert total_jobs(client) == 3


def test_rerun_with_overrides_changes_only_the_fields_given(client: TestClient) -> None:
    original = client.post("/jobs", json={**DEMO, "learning_rate": 0.001, "train_samples": 640}).json()
    changed = client.post(f"/jobs/{original['id']}/rerun", json={"optimizer": "sgd", "train_samples": None}).json()
    assert changed["spec"] == {**original["spec"], "optimizer": "sgd", "train_samples": None}
    error = assert_error(
        client.post(f"/jobs/{original['id']}/rerun", json={"learning_rate": 5}), 422, "invalid_request"
    )
    assert error["details"][0]["loc"] == ["body", "learning_rate"]
    assert_error(client.post(f"/jobs/{original['id']}/rerun", json={"colour": "red"}), 422, "invalid_request")
    assert_error(client.post("/jobs/999999/rerun"), 404, "not_found")
    assert total_jobs(client) == 2
