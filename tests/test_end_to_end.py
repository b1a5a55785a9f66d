"""The API and a worker as separate processes, driven over real HTTP: submit → train → download; cancel."""

from pathlib import Path

import httpx
import pytest
from PIL import Image

from bench.processes import api_server, start_worker, stop, wait_for
from service.config import Settings
from tests.cifar_files import write_cifar10
from worker.hardware import resolve_device

pytestmark = pytest.mark.slow

# What the worker trains on here: `device: auto` takes the GPU where there is one.
DEVICE = resolve_device("auto").type
STAGES = [(layer, stage) for layer in ("conv1", "conv2") for stage in ("initial", "trained", "diff")]


def job_in(client: httpx.Client, job_id: int, *statuses: str) -> dict | None:
    job = client.get(f"/jobs/{job_id}").json()
    return job if job["status"] in statuses else None


def test_submit_train_and_download_over_http(settings: Settings, tmp_path: Path) -> None:
    write_cifar10(settings.data_dir, train_per_batch=40, test_size=64)
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=60) as client:
        worker = start_worker(settings, tmp_path / "worker.log")
        try:
            created = client.post("/jobs", json={"epochs": 2, "image_size": 64, "batch_size": 50, "name": "e2e"})
            assert created.status_code == 201
            job_id = created.json()["id"]
            assert created.headers["location"] == f"/jobs/{job_id}"

            running = wait_for(lambda: job_in(client, job_id, "running", "succeeded"), 120, "the worker to start")
            assert running["started_at"] is not None
            done = wait_for(lambda: job_in(client, job_id, "succeeded", "failed"), 300, "the job to finish")
            assert done["status"] == "succeeded", done["error"]
            assert done["device"] == DEVICE
            assert done["parameter_count"] == 57_044_810
            assert done["progress"]["fraction"] == 1.0
            assert done["progress"]["epochs_completed"] == 2

            metrics = client.get(f"/jobs/{job_id}/metrics").json()
            assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
            csv = client.get(f"/jobs/{job_id}/metrics", params={"format": "csv"}).text.splitlines()
            assert len(csv) == 3

            curves = client.get(f"/jobs/{job_id}/curves.png")
            assert curves.headers["content-type"] == "image/png"
            kernels = client.get(f"/jobs/{job_id}/kernels").json()["kernels"]
            assert sorted((k["layer"], k["stage"]) for k in kernels) == sorted(STAGES)
            for layer, stage in STAGES:
                image = client.get(f"/jobs/{job_id}/kernels/{layer}/{stage}.png")
                assert image.status_code == 200
                (tmp_path / "out.png").write_bytes(image.content)
                with Image.open(tmp_path / "out.png") as decoded:
                    assert min(decoded.size) >= 400

            names = {a["name"] for a in client.get(f"/jobs/{job_id}/artifacts").json()["artifacts"]}
            assert {"weights.pt", "metrics.csv", "curves.png"} <= names
            weights = client.get(f"/jobs/{job_id}/artifacts/weights.pt")
            assert weights.status_code == 200 and len(weights.content) > 200_000_000

            assert client.post(f"/jobs/{job_id}/cancel").status_code == 409
            health = client.get("/health").json()
            assert [w["device"].split(" ")[0] for w in health["workers"]] == [DEVICE]
        finally:
            assert stop(worker) == 0


def test_cancel_a_queued_and_a_running_job_over_http(settings: Settings, tmp_path: Path) -> None:
    # Long enough to be cancelled mid-run on the CPU (a GPU would finish it before the test could cancel it).
    long_job = {
        "dataset": "synthetic",
        "epochs": 50,
        "image_size": 64,
        "batch_size": 16,
        "train_samples": 2000,
        "device": "cpu",
    }
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=60) as client:
        first = client.post("/jobs", json=long_job).json()["id"]
        second = client.post("/jobs", json=long_job).json()["id"]
        worker = start_worker(settings, tmp_path / "worker.log")
        try:
            wait_for(lambda: job_in(client, first, "running"), 120, "the first job to start")
            queued = client.post(f"/jobs/{second}/cancel").json()
            assert queued["status"] == "cancelled"

            # Let it train a little, so there is progress to keep.
            wait_for(lambda: client.get(f"/jobs/{first}").json()["progress"]["steps_done"] >= 3, 120, "progress")
            asked = client.post(f"/jobs/{first}/cancel").json()
            assert asked["cancel_requested"] is True
            ended = wait_for(lambda: job_in(client, first, "cancelled", "failed", "succeeded"), 120, "the cancel")
            assert ended["status"] == "cancelled"
            assert ended["finished_at"] is not None
            assert client.post(f"/jobs/{first}/cancel").json()["status"] == "cancelled"  # idempotent
            kernels = {(k["layer"], k["stage"]) for k in client.get(f"/jobs/{first}/kernels").json()["kernels"]}
            assert ("conv1", "initial") in kernels
        finally:
            assert stop(worker) == 0
