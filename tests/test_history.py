"""A job's whole history through the API, from a real (tiny) training run: any epoch's kernels, their evolution as
a GIF, and each epoch's confusion matrix, mistakes and weight change, drawn by the API's drawing process."""

import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from service.api.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.spec import run_title
from tests.helpers import assert_error, make_settings, queue_jobs, sqlite_database
from worker.hardware import bf16_is_native
from worker.loop import Worker

pytestmark = pytest.mark.slow

EPOCHS = 3
Trained = tuple[TestClient, int, Settings]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """One synthetic job of three short epochs (3 steps each: the pictures need epochs, not learning), trained by a
    real worker; an API client over its database."""
    root = tmp_path_factory.mktemp("history")
    settings = make_settings(root, sqlite_database(root), cache_dir=root / "cache")
    engine = make_engine(settings.database_url)
    (job_id,) = queue_jobs(
        make_sessionmaker(engine),
        dataset="synthetic",
        epochs=EPOCHS,
        image_size=63,
        batch_size=32,
        train_samples=96,
        test_samples=128,
        conv2_filter=5,
        device="cpu",
        name="history <b>test</b>",
    )
    Worker(settings).run(burst=True)
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
        yield client, job_id, settings


def image(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    picture = Image.open(io.BytesIO(response.content))
    picture.load()
    return picture


def pixels(response: httpx.Response) -> np.ndarray:
    return np.asarray(image(response).convert("RGB"))


def nearly_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """The same picture but for a few pixels off by a colour level or so."""
    if a.shape != b.shape:
        return False
    off = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
    return bool((off > 8).mean() < 0.01)


def test_the_kernel_list_names_every_epoch_from_the_initialisation(trained: Trained) -> None:
    client, job_id, _ = trained
    assert client.get(f"/jobs/{job_id}/kernels").json()["epochs"] == list(range(EPOCHS + 1))


@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_any_epochs_kernels_can_be_drawn_and_each_epoch_differs(trained: Trained, layer: str) -> None:
    client, job_id, _ = trained
    url = f"/jobs/{job_id}/kernels/{layer}"
    frames = [pixels(client.get(f"{url}/trained.png", params={"epoch": k})) for k in range(EPOCHS + 1)]
    assert all(f.shape[0] >= 400 and f.std() > 10 for f in frames)
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(frames))
    # Epoch 0 is the initialisation, and the last epoch what the worker drew last: the same pictures, but for the
    # float16 the history keeps (a colour level here and there, a digit in a caption).
    assert nearly_equal(frames[0], pixels(client.get(f"{url}/initial.png")))
    assert nearly_equal(frames[-1], pixels(client.get(f"{url}/trained.png")))
    assert nearly_equal(
        pixels(client.get(f"{url}/diff.png", params={"epoch": EPOCHS})), pixels(client.get(f"{url}/diff.png"))
    )


def test_an_epoch_that_does_not_exist_is_404_naming_those_that_do(trained: Trained) -> None:
    client, job_id, _ = trained
    error = assert_error(client.get(f"/jobs/{job_id}/kernels/conv1/trained.png", params={"epoch": 9}), 404, "not_found")
    assert "epoch 9" in error["message"] and "0, 1, 2, 3" in error["message"]
    assert_error(client.get(f"/jobs/{job_id}/confusion.png", params={"epoch": 9}), 404, "not_found")
    assert_error(client.get(f"/jobs/{job_id}/kernels/conv1/trained.png", params={"epoch": -1}), 422, "invalid_request")


@pytest.mark.parametrize("stage", ["trained", "diff"])
@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_the_evolution_gif_has_a_frame_per_epoch_from_zero(trained: Trained, layer: str, stage: str) -> None:
    client, job_id, _ = trained
    response = client.get(f"/jobs/{job_id}/kernels/{layer}/evolution.gif", params={"stage": stage})
    assert response.headers["content-type"] == "image/gif"
    gif = image(response)
    assert getattr(gif, "n_frames", 1) == EPOCHS + 1
    frames = []
    for k in range(EPOCHS + 1):
        gif.seek(k)
        frames.append(np.asarray(gif.convert("RGB")))
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(frames))


def test_a_second_request_is_served_from_the_cache(trained: Trained) -> None:
    client, job_id, settings = trained
    url = f"/jobs/{job_id}/kernels/conv2/diff.png"
    first = client.get(url, params={"epoch": 2}).content
    cached = set(Path(settings.cache_dir).iterdir())
    assert client.get(url, params={"epoch": 2}).content == first
    assert set(Path(settings.cache_dir).iterdir()) == cached


def test_each_epochs_confusion_mistakes_and_the_weight_change_are_pictures(trained: Trained) -> None:
    client, job_id, _ = trained
    for path in ("confusion.png", "mistakes.png", "weight-change.png"):
        latest = pixels(client.get(f"/jobs/{job_id}/{path}"))
        assert latest.shape[0] >= 300 and latest.std() > 10, path
    first = pixels(client.get(f"/jobs/{job_id}/confusion.png", params={"epoch": 1}))
    assert first.std() > 10
    mistakes = pixels(client.get(f"/jobs/{job_id}/mistakes.png", params={"epoch": 1}))
    assert mistakes.std() > 10


def test_pictures_drawn_on_request_are_titled_with_the_run_as_the_workers_are(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, job_id, _ = trained
    renderer = client.app.state.renderer  # type: ignore[attr-defined]
    titles: list[str] = []
    draw = renderer.draw

    async def noting(picture: Any, key: str, suffix: str) -> Path:
        titles.append(picture.title)
        return await draw(picture, key, suffix)

    monkeypatch.setattr(renderer, "draw", noting)
    for path in ("confusion.png", "mistakes.png"):
        assert client.get(f"/jobs/{job_id}/{path}", params={"epoch": 1}).status_code == 200
    assert client.get(f"/jobs/{job_id}/kernels/conv1/evolution.gif").status_code == 200
    # What the worker's JobPictures titles its own with: the run, in the precision it trained in.
    precision = "bf16" if bf16_is_native(torch.device("cpu")) else "fp32"
    assert titles == [run_title("synthetic", "adam", 1e-4, 32, 63, precision)] * 3
