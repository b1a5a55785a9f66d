"""Real training by a real worker: a 2×2 sweep to its leaderboard and comparison, once for the module, beside the
session's network that has learned the synthetic classes (tests/trained.py), which answers predictions through the
API; images it must refuse, quickly and without harm."""

import io
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bench.processes import api_server, start_worker
from service.api import images
from service.api.app import create_app
from service.api.predictor import Predictor
from service.config import Settings
from service.errors import ServiceUnavailable
from tests.helpers import assert_error
from tests.trained import learned
from worker import synthetic

# Tiny, so that the four jobs train in seconds (3 steps each): the sweep is here for its mechanics, not its numbers.
BASE = {
    "dataset": "synthetic",
    "epochs": 1,
    "image_size": 64,
    "batch_size": 16,
    "train_samples": 48,
    "test_samples": 32,
}
SWEEP = {"name": "optimizers", "base": BASE, "grid": {"optimizer": ["adam", "sgd"], "learning_rate": [1e-4, 1e-3]}}
# Held-out images: drawn from a generator the training and test sets never used.
HELD_OUT_SEED = 20_261_129


@dataclass
class Trained:
    settings: Settings
    client: TestClient
    sweep: dict
    model: int  # the job whose network answers the predictions: the session's (tests/trained.py)
    predictor: Predictor  # the app's


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """The sweep, queued through the API into a copy of the session's trained job; `python -m worker --burst` trains."""
    shared = learned(tmp_path_factory, "trained")
    settings = shared.settings
    app = create_app(settings)
    with TestClient(app) as client:
        sweep = client.post("/sweeps", json=SWEEP).json()
        worker = start_worker(settings, settings.artifact_dir.parent / "worker.log", "--burst")
        assert worker.wait(timeout=600) == 0, (settings.artifact_dir.parent / "worker.log").read_text()
        sweep = client.get(f"/sweeps/{sweep['id']}").json()
        yield Trained(settings, client, sweep, shared.job_id, app.state.predictor)


def png(pixels: np.ndarray, scale: int = 1) -> bytes:
    """A CIFAR-layout (3, 32, 32) uint8 image as a PNG, each pixel repeated `scale`×`scale` times."""
    image = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)))
    if scale > 1:
        image = image.resize((32 * scale, 32 * scale), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def predict(client: TestClient | httpx.Client, job_id: int, data: bytes, name: str = "image.png") -> httpx.Response:
    return client.post(f"/jobs/{job_id}/predict", files={"image": (name, data, "application/octet-stream")})


@pytest.mark.slow
def test_a_2x2_sweep_trains_and_ends_with_a_leaderboard(trained: Trained) -> None:
    sweep, client = trained.sweep, trained.client
    assert sweep["finished"] and sweep["counts"]["succeeded"] == 4, sweep
    board = sweep["leaderboard"]
    assert sorted(e["label"] for e in board) == ["adam lr 1e-3", "adam lr 1e-4", "sgd lr 1e-3", "sgd lr 1e-4"]
    accuracies = [e["test_accuracy"] for e in board]
    assert accuracies == sorted(accuracies, reverse=True) and [e["rank"] for e in board] == [1, 2, 3, 4]
    metrics = client.get(f"/jobs/{board[0]['job_id']}/metrics").json()["epochs"]
    assert board[0]["test_accuracy"] == metrics[-1]["test_accuracy"]

    comparison = client.get(sweep["links"]["compare"]).json()
    assert [j["id"] for j in comparison["jobs"]] == [e["job_id"] for e in board]
    assert comparison["differing"] == ["optimizer", "learning_rate"]
    assert all(len(j["epochs"]) == 1 for j in comparison["jobs"])
    chart = client.get(sweep["links"]["compare_test_accuracy_png"])
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
    (trained.settings.artifact_dir.parent / "compare.png").write_bytes(chart.content)
    listed = client.get("/jobs", params={"sweep_id": sweep["id"]}).json()
    assert sorted(j["id"] for j in listed["items"]) == sorted(j["id"] for j in sweep["jobs"])


@pytest.mark.slow
def test_a_trained_model_predicts_held_out_synthetic_images(trained: Trained) -> None:
    model = trained.model
    pixels, labels = synthetic.draw(20, np.random.default_rng(HELD_OUT_SEED))
    right = 0
    for image, label in zip(pixels, labels, strict=True):
        truth = synthetic.CLASS_NAMES[label]
        response = predict(trained.client, model, png(image))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["job_id"] == model
        predictions = body["predictions"]
        assert len(predictions) == 5 and len({p["class"] for p in predictions}) == 5
        assert {p["class"] for p in predictions} <= set(synthetic.CLASS_NAMES)
        probabilities = [p["probability"] for p in predictions]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
        assert truth in [p["class"] for p in predictions[:3]], (truth, predictions)
        right += predictions[0]["class"] == truth
    # The model scores ~90 % on held-out images (17 of these 20 here); chance would be 2 of 20.
    assert right >= 12, f"{right} of 20 held-out images classified right"
    # Any size is reduced to 32×32 by averaging: an 8× enlargement comes back to the same pixels, the same answer.
    small, large = (predict(trained.client, model, png(pixels[0], scale)).json() for scale in (1, 8))
    assert large == small


@pytest.mark.slow
def test_a_warm_prediction_answers_within_a_second(trained: Trained) -> None:
    model = trained.model
    image = png(synthetic.draw(1, np.random.default_rng(1))[0][0], scale=4)
    predict(trained.client, model, image)  # the model is loaded
    times = []
    for _ in range(5):
        began = time.perf_counter()
        assert predict(trained.client, model, image).status_code == 200
        times.append(time.perf_counter() - began)
    assert sorted(times)[2] < 1.0, times


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width`×`height` RGB pixels and holds none: the start of a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(out, format="GIF")
    return out.getvalue()


def truncated_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="PNG")
    return out.getvalue()[: len(out.getvalue()) // 2]


BAD_IMAGES = [
    ("not an image", b"these are not the pixels you are looking for", 415, "unsupported_media_type"),
    ("empty", b"", 415, "unsupported_media_type"),
    ("a GIF", gif(), 415, "unsupported_media_type"),
    ("a truncated PNG", truncated_png(), 422, "invalid_image"),
    ("a 48-megapixel PNG header", png_header(8000, 6000), 422, "invalid_image"),
    ("over 5 MiB", b"\x89PNG\r\n\x1a\n" + bytes(images.MAX_BYTES), 413, "payload_too_large"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("data", "status", "code"), [b[1:] for b in BAD_IMAGES], ids=[b[0] for b in BAD_IMAGES])
def test_bad_images_get_a_clear_4xx_fast_and_change_nothing(
    trained: Trained, data: bytes, status: int, code: str
) -> None:
    model = trained.model
    good = predict(trained.client, model, png(synthetic.draw(1, np.random.default_rng(2))[0][0]))
    began = time.perf_counter()
    error = assert_error(predict(trained.client, model, data), status, code)
    assert time.perf_counter() - began < 1.0
    assert error["message"]
    assert predict(trained.client, model, png(synthetic.draw(1, np.random.default_rng(2))[0][0])).json() == good.json()


@pytest.mark.slow
def test_a_request_without_an_image_is_422(trained: Trained) -> None:
    model = trained.model
    error = assert_error(trained.client.post(f"/jobs/{model}/predict"), 422, "invalid_request")
    assert error["details"][0]["loc"] == ["body", "image"]


@pytest.mark.slow
def test_only_a_succeeded_job_predicts(trained: Trained) -> None:
    client, image = trained.client, png(synthetic.draw(1, np.random.default_rng(3))[0][0])
    queued = client.post("/jobs", json=BASE).json()["id"]
    error = assert_error(predict(client, queued, image), 409, "conflict")
    assert f"job {queued} is queued" in error["message"] and "only a succeeded job" in error["message"]
    client.post(f"/jobs/{queued}/cancel")
    assert "is cancelled" in assert_error(predict(client, queued, image), 409, "conflict")["message"]
    assert_error(predict(client, 10**9, image), 404, "not_found")


@pytest.mark.slow
def test_predict_over_real_http_and_a_body_over_the_limit_is_413(trained: Trained, tmp_path: Path) -> None:
    """Through uvicorn: the multipart upload, the inference process it starts, and the body limit."""
    model = trained.model
    pixels, _ = synthetic.draw(1, np.random.default_rng(HELD_OUT_SEED + 1))
    with api_server(trained.settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=120) as http:
        answer = predict(http, model, png(pixels[0], scale=2))
        assert answer.status_code == 200, answer.text
        assert answer.json() == predict(trained.client, model, png(pixels[0], scale=2)).json()
        assert_error(predict(http, model, bytes(8 * 1024 * 1024)), 413, "payload_too_large")
        assert predict(http, model, png(pixels[0])).status_code == 200


@pytest.mark.slow
def test_weights_that_cannot_be_loaded_are_a_503_and_the_next_prediction_still_works(
    trained: Trained, tmp_path: Path
) -> None:
    broken = tmp_path / "weights.pt"
    broken.write_bytes(b"not a state_dict")
    assert trained.client.portal is not None
    with pytest.raises(ServiceUnavailable, match="the prediction failed"):
        trained.client.portal.call(trained.predictor.probabilities, broken, "broken", 64, bytes(32 * 32 * 3))
    image = png(synthetic.draw(1, np.random.default_rng(4))[0][0])
    assert predict(trained.client, trained.model, image).status_code == 200


def test_the_api_starts_without_torch_numpy_or_matplotlib() -> None:
    """The predictions and pictures happen in child processes; the API process itself stays light."""
    code = (
        "import sys; from service.api.app import create_app; from service.config import Settings; "
        "create_app(Settings(database_url='sqlite://')); "
        "print(sorted({'torch', 'numpy', 'matplotlib'} & {m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
