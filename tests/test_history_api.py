"""What a job measured, through the API: per-class accuracy, weight change, the per-step loss and confusion matrices."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import jobs, records
from service.api.routes.metrics import bucketed
from service.api.schemas import StepPoint
from service.config import Settings
from service.db import transaction
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, make_settings

CLASSES = [f"class{i}" for i in range(10)]
LAYERS = ["features.0", "classifier.6"]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """These run on SQLite and on Postgres."""
    return make_settings(tmp_path, database_url)


def confusion(epoch: int) -> list[list[int]]:
    """10 test images per class; class k is right 10 - k times (less with each class), + epoch - 1 more."""
    matrix = [[0] * 10 for _ in range(10)]
    for k in range(10):
        right = min(10, 10 - k + epoch - 1)
        matrix[k][k] = right
        matrix[k][(k + 1) % 10] = 10 - right
    return matrix


def record(sessions: Sessions, job_id: int, token: str, epoch: int, steps: list[float]) -> None:
    """One epoch as the worker records it."""
    with transaction(sessions) as s:
        records.record_epoch(
            s,
            job_id,
            token,
            {
                "epoch": epoch,
                "train_loss": sum(steps) / len(steps),
                "test_loss": 2.0,
                "test_accuracy": sum(confusion(epoch)[k][k] for k in range(10)) / 100,
                "seconds": 1.5,
                "images_per_second": 100.0,
                "step_losses": steps,
                "confusion": confusion(epoch),
                "classes": CLASSES,
                "weight_change": {layer: {"from_initial": 0.01 * epoch, "from_previous": 0.01} for layer in LAYERS},
            },
        )


@pytest.fixture
def trained(client: TestClient, sessions: Sessions) -> int:
    """A running job with two epochs of four steps each."""
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w1", False, 30, 30)
        assert claim is not None
        records.training_started(s, job_id, claim.token, "cpu", 57_044_810, 8)
    record(sessions, job_id, claim.token, 1, [2.4, 2.3, 2.2, 2.1])
    record(sessions, job_id, claim.token, 2, [2.0, 1.9, 1.8, 1.7])
    return job_id


def test_metrics_rows_carry_per_class_accuracy_and_weight_change(client: TestClient, trained: int) -> None:
    epochs = client.get(f"/jobs/{trained}/metrics").json()["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    first = epochs[0]
    assert first["per_class_accuracy"] == {f"class{k}": (10 - k) / 10 for k in range(10)}
    assert epochs[1]["per_class_accuracy"]["class9"] == 0.2
    assert first["weight_change"] == {layer: {"from_initial": 0.01, "from_previous": 0.01} for layer in LAYERS}


def test_metrics_csv_gains_a_column_per_class_and_per_layer(client: TestClient, trained: int) -> None:
    lines = client.get(f"/jobs/{trained}/metrics", params={"format": "csv"}).text.splitlines()
    header = lines[0].split(",")
    assert header[:6] == ["epoch", "train_loss", "test_loss", "test_accuracy", "seconds", "images_per_second"]
    assert header[6:16] == [f"accuracy class{k}" for k in range(10)]
    assert header[16:] == [
        "features.0 from_initial",
        "features.0 from_previous",
        "classifier.6 from_initial",
        "classifier.6 from_previous",
    ]
    second = dict(zip(header, lines[2].split(","), strict=True))
    assert float(second["accuracy class9"]) == 0.2
    assert float(second["features.0 from_initial"]) == 0.02


def test_every_step_loss_comes_back_in_order_with_its_epoch(client: TestClient, trained: int) -> None:
    body = client.get(f"/jobs/{trained}/metrics/steps").json()
    assert body["job_id"] == trained and body["steps_total"] == 8
    assert [(p["step"], p["epoch"]) for p in body["points"]] == [(s, 1 if s <= 4 else 2) for s in range(1, 9)]
    assert [p["train_loss"] for p in body["points"]] == pytest.approx([2.4, 2.3, 2.2, 2.1, 2.0, 1.9, 1.8, 1.7])


def test_more_steps_than_max_points_are_averaged_into_buckets(client: TestClient, trained: int) -> None:
    points = client.get(f"/jobs/{trained}/metrics/steps", params={"max_points": 3}).json()["points"]
    # 8 steps into at most 3 buckets: runs of 3, 3 and 2 steps, each reported at its last step.
    assert [(p["step"], p["epoch"]) for p in points] == [(3, 1), (6, 2), (8, 2)]
    assert [p["train_loss"] for p in points] == pytest.approx([2.3, (2.1 + 2.0 + 1.9) / 3, 1.75])
    csv = client.get(f"/jobs/{trained}/metrics/steps", params={"max_points": 3, "format": "csv"}).text.splitlines()
    assert csv[0] == "step,epoch,train_loss" and len(csv) == 4 and csv[3].startswith("8,2,1.75")


@pytest.mark.parametrize("max_points", [0, 10_001, "x"])
def test_max_points_out_of_range_is_422(client: TestClient, trained: int, max_points: object) -> None:
    assert_error(
        client.get(f"/jobs/{trained}/metrics/steps", params={"max_points": max_points}), 422, "invalid_request"
    )


def test_bucketing_keeps_every_point_when_there_are_few() -> None:
    assert bucketed([(1, 2.0), (1, 1.0)], 1000) == [
        StepPoint(step=1, epoch=1, train_loss=2.0),
        StepPoint(step=2, epoch=1, train_loss=1.0),
    ]
    assert bucketed([], 10) == []


def test_confusion_is_the_latest_epochs_unless_one_is_named(client: TestClient, trained: int) -> None:
    latest = client.get(f"/jobs/{trained}/confusion").json()
    assert latest == {"job_id": trained, "epoch": 2, "classes": CLASSES, "matrix": confusion(2)}
    first = client.get(f"/jobs/{trained}/confusion", params={"epoch": 1}).json()
    assert first["epoch"] == 1 and first["matrix"] == confusion(1)


def test_an_unknown_epoch_is_404_naming_the_epochs_there_are(client: TestClient, trained: int) -> None:
    error = assert_error(client.get(f"/jobs/{trained}/confusion", params={"epoch": 7}), 404, "not_found")
    assert "epoch 7" in error["message"] and "1, 2" in error["message"]


def test_a_job_without_epochs_has_no_confusion_yet_and_no_steps(client: TestClient) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    error = assert_error(client.get(f"/jobs/{job_id}/confusion"), 404, "not_found")
    assert "yet" in error["message"]
    assert client.get(f"/jobs/{job_id}/metrics/steps").json() == {"job_id": job_id, "steps_total": None, "points": []}
    assert_error(client.get("/jobs/999/metrics/steps"), 404, "not_found")
    assert_error(client.get("/jobs/999/confusion"), 404, "not_found")
