"""`POST /jobs` says how long the job will train, from the epochs the live workers measured, and warns when that is
long or when no worker is there to run it."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service import estimates
from service.config import Settings
from service.db import transaction
from service.models import Worker
from service.spec import JobSpec
from tests.helpers import Db, Sessions, queue_jobs
from worker.loop import Worker as WorkerLoop

TINY = {
    "dataset": "synthetic",
    "image_size": 63,
    "batch_size": 16,
    "train_samples": 32,
    "test_samples": 16,
    "device": "cpu",
    "epochs": 1,
}


def test_with_no_worker_running_the_answer_says_the_job_waits(client: TestClient) -> None:
    answer = client.post("/jobs", json=TINY).json()
    assert answer["estimate"] == {
        "seconds": None,
        "basis": "no worker is running",
        "warning": "no worker is running: the job waits in the queue until one starts",
    }
    assert client.get(f"/jobs/{answer['id']}").json()["estimate"] is None  # only the POST's answer carries one


def test_the_work_of_an_epoch_grows_with_its_images_and_their_pixels() -> None:
    small = JobSpec.model_validate(TINY)
    assert estimates.epoch_work(small.model_copy(update={"train_samples": 64, "test_samples": 32})) == pytest.approx(
        2 * estimates.epoch_work(small)
    )
    # At 224 px the convolutions are most of the work; at 63 px the linear layers are a good part of it.
    ratio = estimates.epoch_work(small.model_copy(update={"image_size": 224})) / estimates.epoch_work(small)
    assert 5 < ratio < (224 / 63) ** 2


@pytest.mark.slow
def test_the_estimate_is_scaled_from_a_live_workers_measured_epoch(
    settings: Settings, sessions: Sessions, client: TestClient
) -> None:
    (measured,) = queue_jobs(sessions, **TINY)
    worker = WorkerLoop(settings, worker_id="estimator")
    worker.run(burst=True)
    with transaction(sessions) as s:  # as a worker that goes on running: alive, waiting for work
        s.execute(update(Worker).where(Worker.id == "estimator").values(stopped_at=None))
    assert len(Db(settings).epochs(measured)) == 1
    seconds = client.get(f"/jobs/{measured}/metrics").json()["epochs"][0]["seconds"]

    same = client.post("/jobs", json={**TINY, "epochs": 3}).json()["estimate"]
    assert same["seconds"] == pytest.approx(3 * seconds)
    assert same["basis"].startswith(f"worker estimator's epoch 1 of job {measured} (63 px,")
    assert same["warning"] is None

    # The default job (50,000 CIFAR-10 images at 224 px, 5 epochs): hours on a CPU, and the answer says so.
    long = client.post("/jobs", json={"device": "cpu"}).json()["estimate"]
    assert long["seconds"] > estimates.LONG_SECONDS
    assert long["warning"].startswith("this job trains for about ")
    assert long["seconds"] == pytest.approx(
        5 * seconds * estimates.epoch_work(JobSpec(device="cpu")) / estimates.epoch_work(JobSpec.model_validate(TINY))
    )
    rerun = client.post(f"/jobs/{measured}/rerun", json={"epochs": 2}).json()["estimate"]
    assert rerun["seconds"] == pytest.approx(2 * seconds)
