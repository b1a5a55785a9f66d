"""The HTTP routes for looking inside a network, against a real app, database, store and worker-side process: a job
that succeeded with the weights of a freshly initialised AlexNet (what the numbers are is tests/test_inside.py's
business; here, what the routes answer): pictures, cached; uploads as predict takes them; a stopped job through its
checkpoint; and a clear 4xx for everything a job does not have."""

import dataclasses
import io
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from bench.processes import ROOT
from service import artifacts, jobs, records
from service.api.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status
from service.spec import JobSpec
from service.storage import make_store
from tests.helpers import make_settings, publish_artifact, queue_jobs, sqlite_database
from tests.test_checkpoints import checkpoint_after
from tests.test_predict import BAD_IMAGES, png
from worker import synthetic
from worker.checkpoints import Checkpoints
from worker.data import load_dataset
from worker.inside.activations import CONV_LAYERS
from worker.model import build_model

pytestmark = pytest.mark.slow

SPEC = {
    "dataset": "synthetic",
    "epochs": 1,
    "image_size": 64,
    "batch_size": 32,
    "train_samples": 64,
    "test_samples": 200,
    "device": "cpu",
}
# Test images the seeded epoch says it got wrong.
WRONG = (3, 5, 11)


@dataclass
class Trained:
    settings: Settings
    client: TestClient
    job_id: int
    model: torch.nn.Module
    test_images: np.ndarray
    test_labels: np.ndarray


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """A job that succeeded, as a worker leaves one: its weights.pt, an evaluated epoch with its mistakes."""
    folder = tmp_path_factory.mktemp("inside-api")
    settings = make_settings(folder, sqlite_database(folder))
    sessions = make_sessionmaker(make_engine(settings.database_url))
    (job_id,) = queue_jobs(sessions, **SPEC)
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "test", False, settings.lease_seconds, settings.worker_alive_seconds)
    assert claim is not None
    model = build_model(torch.device("cpu"), seed=0).eval()
    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    publish_artifact(settings, sessions, claim, artifacts.WEIGHTS, weights.getvalue())
    data = load_dataset("synthetic", settings.data_dir, SPEC["train_samples"], SPEC["test_samples"], 0)
    predicted = [(int(data.test_labels[k]) + 1) % 10 for k in WRONG]
    epoch = {"epoch": 1, "train_loss": 2.3, "test_loss": 2.3, "test_accuracy": 0.1, "seconds": 1.0}
    details = {
        "classes": list(synthetic.CLASS_NAMES),
        "confusion": [[20] * 10 for _ in range(10)],
        "mistakes": {"indices": list(WRONG), "predicted": predicted, "count": len(WRONG)},
    }
    with transaction(sessions) as s:
        records.record_epoch(s, job_id, claim.token, {**epoch, "images_per_second": 100.0, **details})
        jobs.finish(s, job_id, claim.token, Status.SUCCEEDED)
    with TestClient(create_app(settings)) as client:
        yield Trained(settings, client, job_id, model, data.test_images, data.test_labels)


def test_every_picture_is_a_png_and_asked_again_comes_from_the_cache(trained: Trained) -> None:
    job, client = trained.job_id, trained.client
    urls = [
        f"/jobs/{job}/activations.png?image=5",
        f"/jobs/{job}/explain.png?image=5",
        f"/jobs/{job}/explain.png?image=5&class=blue%20rings",
        f"/jobs/{job}/filters/conv5/3.png?wait=120",
        f"/jobs/{job}/filters/conv1.png?count=16&wait=120",
    ]
    folder = trained.settings.artifact_dir.parent / "pictures"
    folder.mkdir(exist_ok=True)
    for url in urls:
        first = client.get(url)
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "image/png" and first.content.startswith(b"\x89PNG")
        (folder / f"{len(list(folder.iterdir()))}.png").write_bytes(first.content)
        assert client.get(url).content == first.content
    # Asking for another class draws another picture.
    assert client.get(urls[1]).content != client.get(urls[2]).content


def test_an_uploaded_image_is_looked_at_as_its_test_image_is(trained: Trained) -> None:
    job, client = trained.job_id, trained.client
    as_test = client.get(f"/jobs/{job}/explain", params={"image": 9}).json()
    files = {"image": ("mine.png", png(trained.test_images[9], scale=4), "image/png")}
    uploaded = client.post(f"/jobs/{job}/explain", files=files)
    assert uploaded.status_code == 200, uploaded.text
    mine = uploaded.json()
    # A 4× enlargement comes back to the same 32×32 pixels: the same answer, but for not being a test image.
    assert mine["test_index"] is None and mine["label"] is None
    assert mine["cam"] == as_test["cam"] and mine["predictions"] == as_test["predictions"]
    asked = client.post(f"/jobs/{job}/explain", files=files, data={"class": "white cross"}).json()
    assert asked["class_name"] == "white cross"
    layers = client.post(f"/jobs/{job}/activations", files=files).json()["layers"]
    assert [layer["layer"] for layer in layers] == list(CONV_LAYERS)
    for path in ("activations.png", "explain.png"):
        picture = client.post(f"/jobs/{job}/{path}", files=files)
        assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")


def test_bad_uploads_are_refused_before_anything_is_decoded(trained: Trained) -> None:
    for what, data, status, code in BAD_IMAGES:
        for path in ("activations", "explain.png"):
            response = trained.client.post(f"/jobs/{trained.job_id}/{path}", files={"image": ("x", data, "image/png")})
            assert response.status_code == status, (what, path, response.text)
            assert response.json()["error"]["code"] == code


def test_what_a_job_does_not_have_is_a_clear_4xx(trained: Trained) -> None:
    job, client = trained.job_id, trained.client
    cases = [
        (f"/jobs/{job}/activations?image=200", 422, "200"),  # 200 test images: 0–199
        (f"/jobs/{job}/activations?image=-1", 422, "image"),
        (f"/jobs/{job}/activations", 422, "image"),
        (f"/jobs/{job}/explain?image=0&class=zebra", 422, "zebra"),
        (f"/jobs/{job}/filters/conv2/192", 422, "0–191"),
        (f"/jobs/{job}/filters/conv6/0", 422, "layer"),  # the layer named is none of conv1…conv5
        (f"/jobs/{job}/filters/fc1.png", 422, "layer"),
        ("/jobs/999/activations.png?image=0", 404, "999"),
        ("/jobs/999/filters", 404, "999"),
    ]
    for url, status, named in cases:
        response = client.get(url)
        assert response.status_code == status, (url, response.text)
        assert named in response.text, (url, response.text)
    queued = client.post("/jobs", json=SPEC).json()["id"]  # no worker now: it stays queued
    for url in (
        f"/jobs/{queued}/explain.png?image=0",
        f"/jobs/{queued}/filters/conv1/0",
        f"/jobs/{queued}/test-images",
    ):
        error = client.get(url)
        assert error.status_code == 409 and "no weights" in error.json()["error"]["message"]
    client.post(f"/jobs/{queued}/cancel")


def test_the_test_images_list_names_each_ones_class_and_the_latest_mistakes(trained: Trained) -> None:
    listed = trained.client.get(f"/jobs/{trained.job_id}/test-images").json()
    assert listed["classes"] == list(synthetic.CLASS_NAMES)
    assert listed["labels"] == trained.test_labels.tolist() and listed["epoch"] == 1
    assert [m["test_index"] for m in listed["mistakes"]] == list(WRONG)
    for mistake in listed["mistakes"]:
        assert mistake["true"] == synthetic.CLASS_NAMES[trained.test_labels[mistake["test_index"]]]
        assert mistake["true"] != mistake["predicted"]


def test_a_stopped_job_is_looked_at_through_its_newest_checkpoint(trained: Trained) -> None:
    settings, client = trained.settings, trained.client
    sessions = make_sessionmaker(make_engine(settings.database_url))
    job_id = client.post("/jobs", json={**SPEC, "epochs": 3}).json()["id"]
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "test", False, settings.lease_seconds, settings.worker_alive_seconds)
    assert claim is not None and claim.job_id == job_id
    # What `fit` would save in epoch 2 after 17 steps: here, the trained job's weights.
    state = dataclasses.replace(checkpoint_after(1, step=17), model=trained.model.state_dict())
    checkpoints = Checkpoints(make_store(settings), sessions, claim)
    checkpoints.commit(checkpoints.save(state))
    assert JobSpec.model_validate(client.get(f"/jobs/{job_id}").json()["spec"]).epochs == 3
    answer = client.get(f"/jobs/{job_id}/explain", params={"image": 4})
    assert answer.status_code == 200, answer.text
    assert answer.json()["used"] == {"job_id": job_id, "source": "checkpoint", "epoch": 2, "step": 17}
    same = client.get(f"/jobs/{trained.job_id}/explain", params={"image": 4}).json()
    assert answer.json()["cam"] == same["cam"]


def test_the_bench_times_one_image_the_filter_pass_and_its_pictures() -> None:
    command = [sys.executable, "-m", "bench.inside", "--size", "64", "--images", "200", "--repeats", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert "warm, 64 px, median of 2" in result.stdout
    assert "filter pass over 200 test images at 64 px" in result.stdout
    assert "a layer's overview, 32 channels" in result.stdout
