"""DELETE /jobs/{id}: a finished job goes with its rows and every file it left, in a folder or a bucket; a queued or
running one is refused; a job already gone is 404."""

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service import jobs, records
from service.config import Settings
from service.db import transaction
from service.models import Artifact, EpochMetric, Status
from service.spec import DEMO
from service.storage import ArtifactStore, LocalStore, make_store
from service.storage.s3 import S3Store
from tests.helpers import Sessions, assert_error, make_settings
from tests.test_checkpoints import checkpoint_after
from worker.checkpoints import Checkpoints
from worker.publish import ArtifactWriter

EPOCH = {"epoch": 1, "train_loss": 2.0, "test_loss": 2.1, "test_accuracy": 0.2, "seconds": 1.0, "images_per_second": 9}


@pytest.fixture(params=["folder", "bucket"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str) -> Settings:
    """Each test runs with the artifacts in a local folder and in an S3 bucket."""
    store = request.getfixturevalue("bucket") if request.param == "bucket" else {}
    return make_settings(tmp_path, sqlite_url, scratch_dir=tmp_path / "scratch", **store)


def stored(store: ArtifactStore, job_id: int) -> list[str]:
    """Every file the store holds for the job, its staging included."""
    if isinstance(store, LocalStore):
        return sorted(str(p.relative_to(store.root)) for p in (store.root / str(job_id)).rglob("*") if p.is_file())
    assert isinstance(store, S3Store)
    staged = store.scratch / "staging" / str(job_id)
    return store.fs.find(f"{store.root}/{job_id}") + [str(p) for p in staged.rglob("*") if p.is_file()]


def rows(sessions: Sessions, job_id: int) -> int:
    with transaction(sessions) as s:
        return sum(s.scalar(select(func.count()).where(t.job_id == job_id)) or 0 for t in (EpochMetric, Artifact))


def a_failed_run(settings: Settings, sessions: Sessions) -> int:
    """Claim the oldest queued job, leave what a run leaves (an epoch, pictures, a checkpoint, a half-written file),
    and fail it, which keeps its checkpoint; its id."""
    store = make_store(settings)
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w", False, 60, 30)
    assert claim is not None
    with transaction(sessions) as s:
        records.record_epoch(s, claim.job_id, claim.token, EPOCH)
    files = ArtifactWriter(store, sessions, claim)
    for name in ("curves.png", "history/kernels/e0001.npz"):
        files.publish(name, lambda p: p.write_bytes(b"data"))
    checkpoints = Checkpoints(store, sessions, claim)
    checkpoints.commit(checkpoints.save(checkpoint_after(1, model=torch.ones(2))))
    (files.staging / "weights.pt").write_bytes(b"cut short by a kill")
    with transaction(sessions) as s:
        jobs.finish(s, claim.job_id, claim.token, Status.FAILED, "it broke")
    return claim.job_id


def test_a_finished_job_is_deleted_with_its_rows_and_files_and_is_gone_after(
    settings: Settings, sessions: Sessions, client: TestClient
) -> None:
    sweep = client.post("/sweeps", json={"base": DEMO, "grid": {"seed": [1, 2]}}).json()
    job_id = a_failed_run(settings, sessions)
    store = make_store(settings)
    assert len(stored(store, job_id)) == 4 and rows(sessions, job_id) == 3

    response = client.delete(f"/jobs/{job_id}")
    assert response.status_code == 204 and response.content == b""

    assert stored(store, job_id) == []
    assert rows(sessions, job_id) == 0
    assert_error(client.get(f"/jobs/{job_id}"), 404, "not_found")
    assert_error(client.get(f"/jobs/{job_id}/curves.png"), 404, "not_found")
    assert_error(client.delete(f"/jobs/{job_id}"), 404, "not_found")  # a repeat finds nothing to delete
    after = client.get(f"/sweeps/{sweep['id']}")
    assert after.status_code == 200  # the sweep stays, with the job it still has
    assert [j["id"] for j in after.json()["jobs"]] == [j["id"] for j in sweep["jobs"] if j["id"] != job_id]


def test_a_queued_or_running_job_is_not_deleted_until_it_has_finished(
    settings: Settings, sessions: Sessions, client: TestClient
) -> None:
    running, queued = (client.post("/jobs", json=DEMO).json()["id"] for _ in range(2))
    store = make_store(settings)
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w", False, 60, 30)
    assert claim is not None and claim.job_id == running
    ArtifactWriter(store, sessions, claim).publish("curves.png", lambda p: p.write_bytes(b"drawn"))

    for job_id, status in ((running, "running"), (queued, "queued")):
        error = assert_error(client.delete(f"/jobs/{job_id}"), 409, "conflict")
        assert status in error["message"] and "cancel" in error["message"]
    assert client.get(f"/jobs/{running}/curves.png").content == b"drawn"  # nothing was touched

    assert client.post(f"/jobs/{queued}/cancel").json()["status"] == "cancelled"
    assert client.delete(f"/jobs/{queued}").status_code == 204
    assert client.get(f"/jobs/{running}").json()["status"] == "running"
