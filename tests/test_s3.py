"""Artifacts in an S3-compatible bucket (moto's server on 127.0.0.1): publishing fenced by the lease, checkpoints
listed and resumed from by a machine that shares nothing else, and every file a real worker wrote served by the API."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from service import jobs, queries
from service.api.app import create_app
from service.config import Settings
from service.db import transaction
from service.models import utcnow
from service.spec import DEMO
from service.storage import make_store
from service.storage.s3 import S3Store
from tests.helpers import LIGHT_JOB, Sessions, assert_error, make_settings, queue_jobs
from tests.test_checkpoints import checkpoint_after
from worker.checkpoints import Checkpoints
from worker.loop import Worker
from worker.publish import ArtifactWriter

# The smallest job that still draws every picture and checkpoints once (the last epoch needs none): 2 epochs of 10
# small steps on the CPU. SGD, whose checkpoints (456 MB) are a third smaller than Adam's: every byte goes through
# the S3 server in this process.
TINY = {**LIGHT_JOB, "epochs": 2, "optimizer": "sgd"}


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, bucket: dict[str, str]) -> Settings:
    return make_settings(tmp_path, sqlite_url, scratch_dir=tmp_path / "scratch", **bucket)


def bucket_store(settings: Settings) -> S3Store:
    store = make_store(settings)
    assert isinstance(store, S3Store)
    return store


def objects(store: S3Store, job_id: int) -> list[str]:
    """The keys the bucket holds for the job."""
    prefix = f"{store.root}/"
    return sorted(p.removeprefix(prefix) for p in store.fs.find(f"{store.root}/{job_id}"))


def take(settings: Settings, sessions: Sessions, worker: str) -> jobs.Claim:
    """Claim the queued job, first taking it back from whoever held it (as if their lease had lapsed)."""
    with transaction(sessions) as s:
        jobs.reap_expired(s, now=utcnow() + timedelta(days=1))
        claim = jobs.claim_next(s, worker, False, settings.lease_seconds, settings.worker_alive_seconds)
    assert claim is not None
    return claim


def current(sessions: Sessions, job_id: int, name: str) -> Any:
    with transaction(sessions) as s:
        return queries.artifact_row(s, job_id, name)


def test_each_publish_uploads_under_a_key_of_its_own_and_drops_the_one_it_replaced(
    settings: Settings, sessions: Sessions
) -> None:
    (job_id,) = queue_jobs(sessions, **DEMO)
    store = bucket_store(settings)
    files = ArtifactWriter(store, sessions, take(settings, sessions, "w"))
    assert files.staging.is_relative_to(settings.scratch_dir)  # written locally first, where the disk checks look

    files.publish("curves.png", lambda p: p.write_bytes(b"epoch 1"))
    first = current(sessions, job_id, "curves.png")
    assert store.local_path(first.key) is None
    with store.open(first.key) as f:
        assert f.read() == b"epoch 1"

    files.publish("curves.png", lambda p: p.write_bytes(b"epoch 2!"))
    second = current(sessions, job_id, "curves.png")
    assert second.key != first.key and second.size == 8
    assert objects(store, job_id) == [second.key]  # the replaced upload is gone: a job keeps one copy
    assert list(files.staging.iterdir()) == []  # and nothing is left behind on the local disk
    assert not settings.artifact_dir.exists()


def test_a_stale_claims_publish_never_replaces_its_successors_file_in_the_bucket(
    settings: Settings, sessions: Sessions
) -> None:
    (job_id,) = queue_jobs(sessions, **DEMO)
    store = bucket_store(settings)
    stale = ArtifactWriter(store, sessions, take(settings, sessions, "paused"))
    successor = ArtifactWriter(store, sessions, take(settings, sessions, "rescuer"))
    successor.publish("weights.pt", lambda p: p.write_bytes(b"successor"))
    theirs = current(sessions, job_id, "weights.pt")

    with pytest.raises(jobs.LeaseLost):
        stale.publish("weights.pt", lambda p: p.write_bytes(b"stale"))

    assert current(sessions, job_id, "weights.pt").key == theirs.key
    with store.open(theirs.key) as f:
        assert f.read() == b"successor"
    assert objects(store, job_id) == [theirs.key]  # the stale upload was removed once the lease check refused it


def test_a_checkpoint_in_the_bucket_is_found_and_resumed_by_a_machine_that_shares_nothing_else(
    settings: Settings, sessions: Sessions, tmp_path: Path
) -> None:
    (job_id,) = queue_jobs(sessions, **DEMO)
    first = take(settings, sessions, "host-a")
    saved = Checkpoints(bucket_store(settings), sessions, first)
    saved.commit(saved.save(checkpoint_after(1, model=torch.ones(3))))
    # Epoch 2's is uploaded, then the worker dies before recording it.
    saved.save(checkpoint_after(2, model=torch.full((3,), 2.0)))

    other_host = bucket_store(make_settings(tmp_path / "b", settings.database_url, **_bucket_of(settings)))
    assert other_host.scratch != settings.scratch_dir
    assert len(other_host.checkpoint_names(job_id)) == 2
    resumed = Checkpoints(other_host, sessions, take(settings, sessions, "host-b")).load()
    assert resumed is not None and torch.equal(resumed.model["weight"], torch.full((3,), 2.0))

    other_host.discard_checkpoints(job_id)
    assert other_host.checkpoint_names(job_id) == []


def _bucket_of(settings: Settings) -> dict[str, Any]:
    return {k: getattr(settings, k) for k in ("artifact_url", "aws_endpoint_url", "aws_access_key_id")} | {
        "aws_secret_access_key": settings.aws_secret_access_key.get_secret_value(),
        "aws_default_region": settings.aws_default_region,
    }


@pytest.mark.slow
def test_a_worker_trains_into_the_bucket_and_the_api_serves_every_file_then_deletes_them(
    settings: Settings, sessions: Sessions
) -> None:
    (job_id,) = queue_jobs(sessions, **TINY)
    Worker(settings).run(burst=True)
    store = bucket_store(settings)

    with TestClient(create_app(settings)) as client:
        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
        listed = client.get(f"/jobs/{job_id}/artifacts").json()["artifacts"]
        assert {"weights.pt", "metrics.csv", "curves.png", "history/kernels/e0002.npz"} <= {a["name"] for a in listed}
        for artifact in listed:
            response = client.get(artifact["url"])
            assert response.status_code == 200, artifact["name"]
            assert response.headers["content-type"].startswith(artifact["content_type"])
            assert len(response.content) == artifact["size"], artifact["name"]
            if artifact["name"] != "weights.pt":  # 228 MB: its size is enough
                with store.open(current(sessions, job_id, artifact["name"]).key) as f:
                    assert response.content == f.read(), artifact["name"]
        # Pictures drawn on request from the kernel numbers in the bucket.
        for url in (f"/jobs/{job_id}/kernels/conv1/diff.png?epoch=1", f"/jobs/{job_id}/kernels/conv2/evolution.gif"):
            response = client.get(url)
            assert response.status_code == 200, response.text
            assert response.content[:4] in (b"\x89PNG", b"GIF8")

        assert not settings.artifact_dir.exists()  # all of it went to the bucket
        # A succeeded job keeps weights.pt and its final checkpoint (for a continue), not the earlier ones.
        assert store.checkpoint_names(job_id) == [client.get(f"/jobs/{job_id}/artifacts").json()["checkpoint"]["name"]]
        assert store.staged_jobs() == []  # nor its staged files

        assert client.delete(f"/jobs/{job_id}").status_code == 204
        assert objects(store, job_id) == []
        assert_error(client.get(f"/jobs/{job_id}/artifacts/weights.pt"), 404, "not_found")
        assert_error(client.delete(f"/jobs/{job_id}"), 404, "not_found")
