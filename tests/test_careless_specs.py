"""Specs that validate but would not do what was meant are refused with a 422 naming the field: a misspelt field
says which one it probably meant, a batch larger than the training set and a sweep with nothing to sweep are
refused, while specs stored before these rules still read."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.db import transaction
from service.models import Job, Status, utcnow
from service.spec import DEMO, JobSpec
from tests.helpers import Sessions, assert_error, total_jobs


def _details(client: TestClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    error = assert_error(client.post(path, json=body), 422, "invalid_request")
    details: list[dict[str, Any]] = error["details"]
    return details


# ---------------------------------------------------------------- did you mean


@pytest.mark.parametrize(
    ("typo", "meant"), [("epoch", "epochs"), ("lerning_rate", "learning_rate"), ("batchsize", "batch_size")]
)
def test_a_misspelt_field_names_the_field_it_probably_meant(client: TestClient, typo: str, meant: str) -> None:
    (detail,) = _details(client, "/jobs", {**DEMO, typo: 2})
    assert detail == {
        "loc": ["body", typo],
        "msg": f'Extra inputs are not permitted; did you mean "{meant}"?',
        "type": "extra_forbidden",
    }
    assert total_jobs(client) == 0


def test_an_unknown_field_like_no_other_gets_no_guess_and_other_errors_stay_as_they_were(client: TestClient) -> None:
    details = _details(client, "/jobs", {"epochs": 0, "colour": "red", "epoch": 3})
    assert [(d["loc"][-1], d["msg"]) for d in details] == [
        ("epochs", "Input should be greater than or equal to 1"),
        ("colour", "Extra inputs are not permitted"),
        ("epoch", 'Extra inputs are not permitted; did you mean "epochs"?'),
    ]


def test_a_sweep_names_the_field_meant_in_its_base_and_at_its_top(client: TestClient) -> None:
    details = _details(client, "/sweeps", {"base": {**DEMO, "optimiser": "sgd"}, "gird": {"seed": [1]}})
    messages = {tuple(d["loc"]): d["msg"] for d in details}
    assert messages[("body", "base", "optimiser")].endswith('did you mean "optimizer"?')
    assert messages[("body", "gird")].endswith('did you mean "grid"?')


def test_a_misspelt_grid_key_names_the_field_meant(client: TestClient) -> None:
    response = client.post("/sweeps", json={"base": DEMO, "grid": {"lerning_rate": [0.1], "colour": ["red"]}})
    error = assert_error(response, 422, "invalid_request")
    assert error["message"] == (
        "grid keys must be job spec fields; 'lerning_rate', 'colour' are not "
        "(did you mean \"learning_rate\" for 'lerning_rate'?)"
    )
    assert [(d["loc"], d["msg"]) for d in error["details"]] == [
        (["body", "grid", "lerning_rate"], 'not a job spec field; did you mean "learning_rate"?'),
        (["body", "grid", "colour"], "not a job spec field"),
    ]
    assert total_jobs(client) == 0


def test_a_rerun_with_a_misspelt_field_names_the_field_meant(client: TestClient) -> None:
    job = client.post("/jobs", json=DEMO).json()
    (detail,) = _details(client, f"/jobs/{job['id']}/rerun", {"epoch": 5})
    assert detail["msg"].endswith('did you mean "epochs"?')


# ---------------------------------------------------------------- a batch larger than the training set


def test_a_batch_larger_than_the_training_set_is_refused_naming_batch_size(client: TestClient) -> None:
    (detail,) = _details(client, "/jobs", {**DEMO, "batch_size": 2000})
    assert detail["loc"] == ["body", "batch_size"]
    assert detail["msg"].startswith("batch_size 2000 is larger than train_samples 1280")
    assert "at most 1280" in detail["msg"]
    assert total_jobs(client) == 0


def test_a_batch_as_large_as_the_training_set_or_any_batch_of_the_full_set_is_queued(client: TestClient) -> None:
    assert client.post("/jobs", json={**DEMO, "batch_size": 1280}).status_code == 201
    assert client.post("/jobs", json={"batch_size": 4096}).status_code == 201  # all 50,000 images


def test_a_rerun_that_makes_the_batch_too_large_is_refused(client: TestClient) -> None:
    job = client.post("/jobs", json=DEMO).json()
    (detail,) = _details(client, f"/jobs/{job['id']}/rerun", {"train_samples": 16})
    assert detail["loc"] == ["body", "batch_size"]
    assert "larger than train_samples 16" in detail["msg"]
    assert total_jobs(client) == 1


@pytest.mark.parametrize(
    ("base", "grid", "loc"),
    [
        (DEMO, {"batch_size": [32, 2048]}, ["body", "grid", "batch_size"]),
        (DEMO, {"train_samples": [1280, 16]}, ["body", "grid", "train_samples"]),
        ({**DEMO, "train_samples": 16}, {"seed": [1, 2]}, ["body", "base", "batch_size"]),
    ],
)
def test_a_sweep_with_a_batch_larger_than_its_training_set_is_refused_where_it_is_set(
    client: TestClient, base: dict[str, Any], grid: dict[str, list[Any]], loc: list[str]
) -> None:
    (detail,) = _details(client, "/sweeps", {"base": base, "grid": grid})
    assert (detail["loc"], detail["type"]) == (loc, "batch_too_large")
    assert total_jobs(client) == 0


def test_a_sweep_whose_grid_sets_a_fitting_batch_over_a_small_base_is_queued(client: TestClient) -> None:
    # The base alone (batch 512 of 100 images) would be refused; no job of the sweep trains it.
    body = {"base": {**DEMO, "train_samples": 100}, "grid": {"batch_size": [32, 64]}}
    assert client.post("/sweeps", json=body).status_code == 201
    assert total_jobs(client) == 2


def test_a_job_stored_before_the_rule_still_reads(client: TestClient, sessions: Sessions) -> None:
    spec = JobSpec.model_validate({**DEMO, "batch_size": 2000}).model_dump(mode="json")
    with transaction(sessions) as s:
        job = Job(spec=spec, status=Status.SUCCEEDED, device_request="auto", created_at=utcnow(), max_attempts=3)
        s.add(job)
        s.flush()
        job_id = job.id
    assert client.get(f"/jobs/{job_id}").json()["spec"]["batch_size"] == 2000
    assert [j["id"] for j in client.get("/jobs").json()["items"]] == [job_id]


# ---------------------------------------------------------------- a sweep with nothing to sweep


@pytest.mark.parametrize("body", [{"base": DEMO, "grid": {}}, {"base": DEMO}])
def test_a_sweep_without_a_grid_is_refused_naming_the_grid(client: TestClient, body: dict[str, Any]) -> None:
    (detail,) = _details(client, "/sweeps", body)
    assert detail["loc"] == ["body", "grid"]
    assert detail["type"] in ("empty_grid", "missing")
    assert total_jobs(client) == 0 and client.get("/sweeps").json()["total"] == 0


def test_the_published_schema_says_a_grid_is_required_and_not_empty(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["SweepIn"]
    assert "grid" in schema["required"]
    assert schema["properties"]["grid"]["minProperties"] == 1
