"""What crosses a process boundary is validated at both ends: the API refuses to send a request that is not valid,
and the drawing and prediction processes answer one with an error naming the field (and go on answering); an epoch's
record survives the database whole, and its scalars are the CSV's and the API's columns."""

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from bench.processes import ROOT
from service import artifacts, jobs, records
from service.api.predictor import Predictor
from service.api.renderer import Renderer
from service.contracts import (
    EPOCH_SCALARS,
    PIXEL_BYTES,
    ConfusionDraw,
    EpochRecord,
    KernelsDraw,
    Mistakes,
    WeightChange,
)
from service.db import transaction
from service.models import EpochMetric
from service.spec import DEMO
from tests.helpers import Sessions


class Child:
    """`python -m <module>`, asked one JSON line at a time, as the API's `ChildProcess` does."""

    def __init__(self, module: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )

    def ask(self, line: str) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer: dict = json.loads(self.process.stdout.readline())
        return answer

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=60)


@pytest.fixture
def drawing() -> Iterator[Child]:
    child = Child("worker.pictures.server")
    yield child
    assert child.close() == 0


def order(tmp_path: Path, **picture: object) -> str:
    return json.dumps({"out": str(tmp_path / "out.png"), "picture": picture})


CONFUSION = {"kind": "confusion", "matrix": [[3, 1], [0, 4]], "classes": ["cat", "dog"], "epoch": 1, "title": "t"}


@pytest.mark.slow
def test_the_drawing_process_answers_a_bad_order_naming_the_field_and_draws_the_next(
    drawing: Child, tmp_path: Path
) -> None:
    kernels = {"kind": "kernels", "layer": "conv9", "stage": "diff", "epoch": 1, "filter": 0, "sources": ["a.npz"]}
    error = drawing.ask(order(tmp_path, **kernels))["error"]
    assert error.startswith("invalid order: picture.kernels.layer: ")
    assert drawing.ask(order(tmp_path, **{**CONFUSION, "matrix": [[1, 2, 3]]}))["error"].startswith(
        "invalid order: picture.confusion: Value error, a confusion matrix for 2 classes must be 2×2"
    )
    assert "picture.confusion.colour" in drawing.ask(order(tmp_path, **CONFUSION, colour="red"))["error"]
    assert "picture: Input tag 'chart'" in drawing.ask(order(tmp_path, kind="chart"))["error"]
    assert drawing.ask("not json")["error"].startswith("invalid order: (the message): Invalid JSON")
    assert not (tmp_path / "out.png").exists()

    assert drawing.ask(order(tmp_path, **CONFUSION)) == {"error": None, "missing": False}
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_prediction_process_answers_a_bad_request_naming_the_field(tmp_path: Path) -> None:
    child = Child("worker.predict")
    try:
        request = {"weights": str(tmp_path / "w.pt"), "key": "k", "image_size": 64}
        short = base64.b64encode(bytes(10)).decode()
        answer = child.ask(json.dumps({**request, "pixels": short}))
        assert answer["probabilities"] == []
        assert answer["error"].startswith("invalid request: pixels: Value error, expected 32×32 RGB (3072 bytes)")
        missing = child.ask(json.dumps({"weights": "w", "image_size": 64}))
        assert "invalid request: key: Field required" in missing["error"]
        # A valid request gets as far as the weights, which are not there: an error of its own, the process still up.
        pixels = base64.b64encode(bytes(PIXEL_BYTES)).decode()
        assert child.ask(json.dumps({**request, "pixels": pixels}))["error"].startswith("FileNotFoundError")
    finally:
        assert child.close() == 0


def test_the_api_refuses_to_send_a_picture_that_is_not_valid(tmp_path: Path) -> None:
    renderer = Renderer(tmp_path / "cache")
    # Built without validation, as a bug would build it: the renderer checks it again before anything is sent.
    bad = KernelsDraw.model_construct(layer="conv9", stage="diff", epoch=1, filter=0, sources=["a.npz"])
    with pytest.raises(ValidationError, match=r"picture\.kernels\.layer"):
        asyncio.run(renderer.draw(bad, "key", ".png"))
    assert renderer.child.process is None, "no drawing process was started"
    with pytest.raises(ValidationError, match="2 classes must be 2×2"):
        ConfusionDraw(matrix=[[1]], classes=["cat", "dog"], epoch=1, title="")


def test_the_api_refuses_to_send_pixels_that_are_not_one_cifar_image() -> None:
    predictor = Predictor()
    with pytest.raises(ValidationError, match="expected 32×32 RGB"):
        asyncio.run(predictor.probabilities(Path("w.pt"), "key", 64, bytes(PIXEL_BYTES - 1)))
    assert predictor.child.process is None


# ---------------------------------------------------------------- the epoch's record


def full_record(epoch: int) -> EpochRecord:
    """A record with every field measured (none left at its default)."""
    return EpochRecord(
        epoch=epoch,
        train_loss=1.5,
        test_loss=1.25,
        test_accuracy=0.625,
        seconds=2.5,
        images_per_second=640.0,
        step_losses=[1.75, 1.25],
        confusion=[[5, 3], [0, 8]],
        classes=["cat", "dog"],
        weight_change={"features.0": WeightChange(from_initial=0.5, from_previous=0.25)},
        mistakes=Mistakes(count=3, indices=[4, 9], predicted=[1, 1]),
    )


def claimed(client: TestClient, sessions: Sessions) -> jobs.Claim:
    client.post("/jobs", json=DEMO)
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w1", False, 30, 30)
    assert claim is not None
    return claim


def test_every_field_of_an_epochs_record_comes_back_from_the_database(client: TestClient, sessions: Sessions) -> None:
    claim = claimed(client, sessions)
    stored = [full_record(1), EpochRecord(**full_record(2).scalars())]  # the second with nothing but its scalars
    for record in stored:
        with transaction(sessions) as s:
            records.record_epoch(s, claim.job_id, claim.token, record)
    with transaction(sessions) as s:
        rows = s.scalars(
            select(EpochMetric).where(EpochMetric.job_id == claim.job_id).order_by(EpochMetric.epoch)
        ).all()
        assert [records.epoch_record(row) for row in rows] == stored
        assert rows[1].details == {}  # defaults are not stored


def test_a_measurement_this_version_does_not_know_is_left_out_when_read_back(
    client: TestClient, sessions: Sessions
) -> None:
    claim = claimed(client, sessions)
    with transaction(sessions) as s:
        records.record_epoch(s, claim.job_id, claim.token, full_record(1))
        row = s.scalars(select(EpochMetric)).one()
        row.details = {**row.details, "learning_rate": 0.01}  # as a newer worker might have stored it
    (epoch,) = client.get(f"/jobs/{claim.job_id}/metrics").json()["epochs"]
    assert epoch["per_class_accuracy"] == {"cat": 5 / 8, "dog": 1.0}


def test_a_record_that_is_not_valid_is_refused_and_nothing_is_stored(client: TestClient, sessions: Sessions) -> None:
    claim = claimed(client, sessions)
    for bad in ({**full_record(1).scalars(), "epoch": 0}, {**full_record(1).scalars(), "learning_rate": 0.1}):
        with pytest.raises(ValidationError), transaction(sessions) as s:
            records.record_epoch(s, claim.job_id, claim.token, bad)
    with transaction(sessions) as s:
        assert s.scalars(select(EpochMetric)).all() == []


def test_the_records_scalars_are_the_first_columns_of_the_csv_and_the_apis_metrics(
    client: TestClient, sessions: Sessions
) -> None:
    claim = claimed(client, sessions)
    with transaction(sessions) as s:
        records.record_epoch(s, claim.job_id, claim.token, full_record(1))
    header = client.get(f"/jobs/{claim.job_id}/metrics", params={"format": "csv"}).text.splitlines()[0].split(",")
    assert header == [
        *EPOCH_SCALARS,
        "accuracy cat",
        "accuracy dog",
        "features.0 from_initial",
        "features.0 from_previous",
    ]
    (epoch,) = client.get(f"/jobs/{claim.job_id}/metrics").json()["epochs"]
    assert list(epoch) == [*EPOCH_SCALARS, "per_class_accuracy", "weight_change"]
    assert {k: epoch[k] for k in EPOCH_SCALARS} == full_record(1).scalars()
    assert epoch["per_class_accuracy"] == {"cat": 5 / 8, "dog": 1.0}
    assert artifacts.metrics_csv([full_record(1)]).splitlines()[0].split(",") == header  # the worker's file alike
