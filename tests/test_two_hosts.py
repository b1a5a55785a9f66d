"""Two worker hosts that share only Postgres and an S3 bucket: one is killed mid-job, the other resumes the job from
its checkpoint in the bucket, and the user downloads every file through the API on a third."""

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bench.processes import api_server, start_worker, stop
from service.config import Settings
from service.models import FINISHED
from tests.helpers import Db, make_settings
from tests.test_crashes import SPEC, mid_epoch_after_a_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def host(tmp_path: Path, name: str, database_url: str, bucket: dict[str, str]) -> Settings:
    """One machine: the shared database and bucket, and folders of its own (scratch, artifacts, data, cache); short
    leases, so that a dead worker's job comes back within seconds."""
    root = tmp_path / name
    return make_settings(
        root,
        database_url,
        scratch_dir=root / "scratch",
        lease_seconds=4.0,
        heartbeat_seconds=0.5,
        worker_alive_seconds=5.0,
        **bucket,
    )


def test_a_job_killed_on_one_host_resumes_on_another_from_the_bucket_and_every_file_downloads(
    tmp_path: Path, postgres_url: str, bucket: dict[str, str]
) -> None:
    api_host, *worker_hosts = (host(tmp_path, name, postgres_url, bucket) for name in ("api", "a", "b"))
    db = Db(api_host, SPEC)
    job_id = db.submit(epochs=3, seed=5, optimizer="sgd")  # SGD's checkpoints are a third smaller than Adam's
    with api_server(api_host, tmp_path / "api.log") as base:
        workers = [start_worker(settings, tmp_path / f"worker-{i}.log") for i, settings in enumerate(worker_hosts)]
        job = db.when(job_id, "a checkpoint in the bucket, then steps past it", mid_epoch_after_a_checkpoint)
        (victim,) = [i for i, w in enumerate(workers) if job.worker_id and job.worker_id.split("-")[-2] == str(w.pid)]
        workers[victim].kill()  # SIGKILL: nothing is handed back, the lease is left to lapse
        workers[victim].wait()
        rescuer = 1 - victim
        try:
            job = db.when(job_id, "the other host to finish the job", lambda j: j.status in FINISHED)
        finally:
            assert stop(workers[rescuer]) == 0

        assert (job.status, job.error, job.attempts) == ("succeeded", None, 2)
        assert [e for e, _ in db.epochs(job_id)] == [1, 2, 3]
        log = (tmp_path / f"worker-{rescuer}.log").read_text()
        assert f"job {job_id}: resuming after epoch" in log, log

        with httpx.Client(base_url=base, timeout=60) as client:
            listed = client.get(f"/jobs/{job_id}/artifacts").json()["artifacts"]
            assert {"weights.pt", "metrics.csv", "curves.png", "confusion.png"} <= {a["name"] for a in listed}
            for artifact in listed:
                response = client.get(artifact["url"])
                assert response.status_code == 200, (artifact["name"], response.text)
                assert len(response.content) == artifact["size"], artifact["name"]
            assert client.get(f"/jobs/{job_id}/kernels/conv1/evolution.gif?stage=diff").status_code == 200
            # The trained weights are in the bucket only: the API fetches them for its inference process.
            image = io.BytesIO()
            Image.new("RGB", (48, 48), (200, 40, 30)).save(image, format="PNG")
            answer = client.post(f"/jobs/{job_id}/predict", files={"image": ("red.png", image.getvalue(), "image/png")})
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["predictions"]) == 5

    for settings in (api_host, *worker_hosts):
        assert not settings.artifact_dir.exists()  # no host kept the artifacts: the bucket did
