"""The worker, in-process, training for real on a few hundred CIFAR-format images at a small size."""

import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import Row

from service import queries
from service.artifacts import checkpoint_position
from service.config import Settings
from service.db import transaction
from service.models import EpochMetric, Job
from tests.cifar_files import write_cifar10
from tests.helpers import Sessions, queue_jobs
from worker import checkpoint
from worker.hardware import bf16_is_native, cpu_has_fast_bf16, resolve_device
from worker.loop import Worker
from worker.measures import WEIGHT_LAYERS
from worker.model import build_model

# What the worker trains on here: `device: auto` takes the GPU where there is one.
DEVICE = resolve_device("auto").type
# Where bf16 is emulated (CPUs without AVX-512 BF16 or AMX) a bf16 step is ~30× slower than fp32.
BF16_NATIVE = bf16_is_native(resolve_device("auto"))
PICTURES = ["curves.png", "confusion.png", "mistakes.png", "weight-change.png"]
KERNELS = [f"kernels/{layer}/{stage}.png" for layer in ("conv1", "conv2") for stage in ("initial", "trained", "diff")]


def load(sessions: Sessions, job_id: int) -> tuple[Job, list[EpochMetric], dict[str, Row[Any]]]:
    with transaction(sessions) as s:
        job = queries.get_job(s, job_id)
        metrics = list(job.metrics)
        artifacts = {a.name: a for a in queries.artifact_rows(s, job_id)}
        return job, metrics, artifacts


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        return np.asarray(image.convert("RGB"))


@pytest.mark.slow
def test_worker_trains_a_cifar_job_and_writes_metrics_and_every_picture(settings: Settings, sessions: Sessions) -> None:
    write_cifar10(settings.data_dir, train_per_batch=60, test_size=100)
    (job_id,) = queue_jobs(sessions, epochs=2, image_size=64, batch_size=64, conv2_filter=7)
    Worker(settings).run(burst=True)

    job, metrics, artifacts = load(sessions, job_id)
    assert (job.status, job.error) == ("succeeded", None)
    assert job.device == DEVICE
    assert job.parameter_count == 57_044_810
    assert job.attempts == 1
    assert job.epochs_completed == 2
    assert job.steps_total == job.steps_done == 2 * 5  # 300 images in batches of 64
    assert [m.epoch for m in metrics] == [1, 2]
    for m in metrics:
        assert 0 < m.train_loss < 10 and 0 < m.test_loss < 10
        assert 0 <= m.test_accuracy <= 1
        assert m.seconds > 0 and m.images_per_second > 0
        # Every step's loss, whose mean weighted by batch size is the epoch's training loss (5 steps: 4 × 64 + 44).
        steps = m.details["step_losses"]
        assert len(steps) == 5
        assert np.dot(steps, [64, 64, 64, 64, 44]) / 300 == pytest.approx(m.train_loss, rel=1e-4)
        # The confusion matrix counts each of the 100 test images once; its diagonal is the accuracy.
        matrix = np.array(m.details["confusion"])
        assert matrix.shape == (10, 10) and matrix.sum() == 100
        assert np.trace(matrix) / 100 == pytest.approx(m.test_accuracy)
        assert m.details["classes"][:2] == ["airplane", "automobile"]  # CIFAR-10's own names, from batches.meta
        assert set(m.details["weight_change"]) == set(WEIGHT_LAYERS)
        assert all(c["from_initial"] > 0 and c["from_previous"] > 0 for c in m.details["weight_change"].values())
    first, second = (m.details["weight_change"] for m in metrics)
    for layer in WEIGHT_LAYERS:  # epoch 1 moves from the initial weights; after two epochs they are further away
        assert first[layer]["from_previous"] == pytest.approx(first[layer]["from_initial"])
        assert second[layer]["from_initial"] > first[layer]["from_initial"]

    history = [f"history/kernels/e{k:04d}.npz" for k in range(3)]  # the initialisation and both epochs
    assert set(artifacts) == {"metrics.csv", "weights.pt", *PICTURES, *KERNELS, *history}
    folder = settings.artifact_dir / str(job_id)
    with np.load(folder / history[-1]) as numbers:
        assert numbers["conv1"].shape == (64, 3, 11, 11) and numbers["conv2"].shape == (64, 5, 5)
    for name in [*PICTURES, *KERNELS]:
        pixels = png(folder / name)
        assert pixels.shape[0] >= 400 and pixels.shape[1] >= 400, name
        assert pixels.std() > 10, f"{name} looks blank"
        assert artifacts[name].size == (folder / name).stat().st_size
    for layer in ("conv1", "conv2"):
        initial = png(folder / f"kernels/{layer}/initial.png")
        trained = png(folder / f"kernels/{layer}/trained.png")
        assert not np.array_equal(initial, trained), f"{layer}: training changed nothing"

    csv_lines = (folder / "metrics.csv").read_text().splitlines()
    header = csv_lines[0].split(",")
    assert header[:6] == ["epoch", "train_loss", "test_loss", "test_accuracy", "seconds", "images_per_second"]
    assert "accuracy airplane" in header and "features.0 from_initial" in header
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["1", "2"]

    model = build_model(torch.device("cpu"), seed=123)
    model.load_state_dict(checkpoint.load(folder / "weights.pt"))
    # The final checkpoint alone stays, for a continue; the earlier epochs' are gone.
    (kept,) = (folder / "checkpoints").iterdir()
    assert kept.name == job.checkpoint and checkpoint_position(kept.name) == (2, 0)


@pytest.mark.slow
def test_a_cuda_job_on_a_machine_without_cuda_fails_with_a_clear_error(settings: Settings, sessions: Sessions) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (job_id,) = queue_jobs(
        sessions,
        dataset="synthetic",
        device="cuda",
        epochs=1,
        image_size=64,
        train_samples=32,
        test_samples=32,
    )
    Worker(settings).run(burst=True)
    job, metrics, _ = load(sessions, job_id)
    assert job.status == "failed"
    assert job.error is not None and "cuda" in job.error.lower() and "no CUDA GPU" in job.error
    assert metrics == []


@pytest.mark.slow
def test_missing_cifar_without_network_fails_saying_where_to_put_the_archive(
    settings: Settings, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    (job_id,) = queue_jobs(sessions, epochs=1, image_size=64, train_samples=32, test_samples=32)
    Worker(settings).run(burst=True)
    job, _, _ = load(sessions, job_id)
    assert job.status == "failed"
    assert job.error is not None
    assert str((settings.data_dir / "cifar-10-python.tar.gz").resolve()) in job.error


@pytest.mark.slow
@pytest.mark.skipif(
    not BF16_NATIVE,
    reason="bf16 is emulated on this CPU (no AVX-512 BF16 or AMX), ~30x slower: 80 steps would take ~20 min; "
    "test_engine.py's bf16 step covers the code path here",
)
def test_synthetic_data_is_learnable_in_bf16_within_two_epochs(settings: Settings, sessions: Sessions) -> None:
    (job_id,) = queue_jobs(
        sessions,
        dataset="synthetic",
        epochs=2,
        image_size=64,
        batch_size=32,
        train_samples=1280,  # 80 steps of 32: enough to leave chance far behind (0.9–1.0 seen)
        test_samples=200,
        precision="bf16",
    )
    Worker(settings).run(burst=True)
    job, metrics, _ = load(sessions, job_id)
    assert job.status == "succeeded", job.error
    assert metrics[-1].test_accuracy >= 0.5, [m.test_accuracy for m in metrics]


@pytest.mark.slow
def test_a_bf16_job_on_a_worker_without_native_bf16_fails_saying_why(
    settings: Settings, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine trains on CUDA, where bf16 is native")
    # The operator's cap on oneDNN's instruction set is how a CPU without AVX-512 BF16 looks to the worker.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    cpu_has_fast_bf16.cache_clear()
    try:
        (job_id,) = queue_jobs(
            sessions, dataset="synthetic", precision="bf16", epochs=1, image_size=64, train_samples=32
        )
        (auto_id,) = queue_jobs(
            sessions, dataset="synthetic", epochs=1, image_size=64, train_samples=32, test_samples=32
        )
        worker = Worker(settings)
        assert worker.bf16_native is False
        worker.run(burst=True)
    finally:
        cpu_has_fast_bf16.cache_clear()
    job, metrics, _ = load(sessions, job_id)
    assert job.status == "failed"
    assert job.error is not None and "no native bf16" in job.error and "'fp32'" in job.error
    assert metrics == []
    auto, auto_metrics, _ = load(sessions, auto_id)  # `auto` on the same worker trains, in fp32
    assert auto.status == "succeeded" and len(auto_metrics) == 1
