"""A job's files over the HTTP API: listed, served by the names the database recorded, and nothing else."""

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import jobs
from service.config import Settings
from service.db import transaction
from service.models import Status
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, make_settings, publish_artifact


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


def test_artifacts_not_drawn_yet_are_404_saying_so(client: TestClient) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    error = assert_error(client.get(f"/jobs/{job_id}/curves.png"), 404, "not_found")
    assert error["message"] == f"job {job_id} has no artifact 'curves.png' (yet)"
    assert_error(client.get(f"/jobs/{job_id}/kernels/conv1/trained.png"), 404, "not_found")
    assert client.get(f"/jobs/{job_id}/kernels").json() == {"job_id": job_id, "kernels": [], "epochs": []}
    assert client.get(f"/jobs/{job_id}/artifacts").json() == {"job_id": job_id, "artifacts": [], "checkpoint": None}


def test_a_failed_jobs_missing_files_are_404_saying_they_will_not_come(client: TestClient, sessions: Sessions) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    claim = claim_next(sessions)
    with transaction(sessions) as s:
        jobs.finish(s, claim.job_id, claim.token, Status.FAILED, "boom")
    error = assert_error(client.get(f"/jobs/{job_id}/curves.png"), 404, "not_found")
    assert error["message"] == f"job {job_id} has no artifact 'curves.png', and will not have one: it is failed"


def test_recorded_artifacts_are_listed_and_served(client: TestClient, settings: Settings, sessions: Sessions) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    claim = claim_next(sessions)
    publish_artifact(settings, sessions, claim, "kernels/conv2/diff.png", b"\x89PNG fake")
    publish_artifact(settings, sessions, claim, "metrics.csv", b"epoch\n")
    listed = client.get(f"/jobs/{job_id}/artifacts").json()["artifacts"]
    assert [(a["name"], a["size"], a["url"]) for a in listed] == [
        ("kernels/conv2/diff.png", 9, f"/jobs/{job_id}/artifacts/kernels/conv2/diff.png"),
        ("metrics.csv", 6, f"/jobs/{job_id}/artifacts/metrics.csv"),
    ]
    kernels = client.get(f"/jobs/{job_id}/kernels").json()["kernels"]
    assert [(k["layer"], k["stage"], k["url"]) for k in kernels] == [
        ("conv2", "diff", f"/jobs/{job_id}/kernels/conv2/diff.png")
    ]
    image = client.get(f"/jobs/{job_id}/kernels/conv2/diff.png")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == b"\x89PNG fake"
    assert client.get(f"/jobs/{job_id}/artifacts/metrics.csv").content == b"epoch\n"


@pytest.mark.parametrize(
    "name",
    [
        "../1/metrics.csv",
        "..%2F..%2Fjobs.db",
        "%2E%2E/%2E%2E/jobs.db",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "kernels/..%2Fmetrics.csv",
    ],
)
def test_no_path_outside_the_recorded_artifacts_is_served(
    client: TestClient, settings: Settings, sessions: Sessions, name: str
) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    publish_artifact(settings, sessions, claim_next(sessions), "metrics.csv", b"epoch\n")
    response = client.get(f"/jobs/{job_id}/artifacts/{name}")
    assert response.status_code == 404, response.text
    assert b"root:" not in response.content


def test_a_symlink_leading_out_of_the_artifact_root_is_404(
    client: TestClient, settings: Settings, sessions: Sessions, tmp_path: Path
) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    path = publish_artifact(settings, sessions, claim_next(sessions), "curves.png", b"x")
    path.unlink()
    os.symlink(secret, path)
    assert_error(client.get(f"/jobs/{job_id}/curves.png"), 404, "not_found")
