"""A full disk is not the job's fault: the job waits, the worker says why, and both go on once there is room.

The artifact folder is a small tmpfs, really full: mounting one needs root (CI runs as root, and there a failed mount
fails the test); elsewhere these tests are skipped with the reason printed.
"""

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from bench.processes import start_worker, stop, wait_for
from service import artifacts, queries
from service.api.app import create_app
from service.db import transaction
from service.models import FINISHED
from tests.helpers import LIGHT_JOB, Db, make_settings
from worker import checkpoint, disk
from worker.disk import DiskFull

pytestmark = pytest.mark.slow

SPEC = LIGHT_JOB
MiB = 2**20


def cannot_mount(reason: str) -> None:
    """Skip where a tmpfs cannot be mounted; but not under CI, which runs as root so that these tests run."""
    if os.environ.get("CI") == "1":
        pytest.fail(f"CI must run the tests on a real small volume: {reason}")
    pytest.skip(reason)


def small_volume(folder: Path, size: int) -> Callable[[], Iterator[Path]]:
    def mounted() -> Iterator[Path]:
        folder.mkdir(parents=True)
        if os.geteuid() != 0:
            cannot_mount("a small filesystem for the artifacts needs a tmpfs mount, which needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            cannot_mount(f"could not mount a tmpfs: {done.stderr.decode().strip()}")
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=True)

    return mounted


@pytest.fixture
def tiny_volume(tmp_path: Path) -> Iterator[Path]:
    """8 MiB: room for a few pictures, not for a checkpoint."""
    yield from small_volume(tmp_path / "tiny", 8 * MiB)()


@pytest.fixture
def job_volume(tmp_path: Path) -> Iterator[Path]:
    """1.7 GiB: room for what a job writes at its last epoch, little more: the previous epoch's checkpoint, the final
    one that replaces it (684 MB each; kept for a continue) and the weights (228 MB)."""
    yield from small_volume(tmp_path / "artifacts", 1700 * MiB)()


@pytest.fixture
def one_checkpoint_volume(tmp_path: Path) -> Iterator[Path]:
    """1.2 GiB: room for one checkpoint (684 MB) and the weights, not for two checkpoints."""
    yield from small_volume(tmp_path / "artifacts", 1200 * MiB)()


def fill(volume: Path, leave: int) -> Path:
    """Take all but `leave` bytes of the volume's free space with a file; the file."""
    ballast = volume / "ballast"
    size = disk.free_bytes(volume) - leave
    with open(ballast, "ab") as f:
        os.posix_fallocate(f.fileno(), 0, size)
    return ballast


def test_a_checkpoint_that_does_not_fit_is_reported_as_a_full_disk_naming_the_path(tiny_volume: Path) -> None:
    target = tiny_volume / "1" / "checkpoints" / "x.pt"
    with pytest.raises(DiskFull) as caught:
        checkpoint.save({"model": torch.zeros(4 * MiB)}, target)  # 16 MiB
    message = str(caught.value)
    assert message.startswith(f"waiting for disk space on {tiny_volume}: ")
    assert str(target.parent) in message
    assert "no space left on device" in message
    assert list(target.parent.iterdir()) == []  # no half-written file is left behind


def test_a_full_disk_holds_jobs_back_without_failing_them_until_there_is_room(
    job_volume: Path, tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url, artifact_dir=job_volume, heartbeat_seconds=0.5)
    db = Db(settings, SPEC)
    job_id = db.submit(epochs=2)
    client = TestClient(create_app(settings))

    # Full before the worker starts: it claims nothing and says why.
    ballast = fill(job_volume, leave=200 * MiB)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        health = wait_for(
            lambda: (h := client.get("/health").json())["status"] == "degraded" and h, 120, "/health to say degraded"
        )
        (problem,) = health["problems"]
        assert f"waiting for disk space on {job_volume}: need " in problem
        assert db.job(job_id).status == "queued"

        # Room again: the job starts; the disk fills while it trains, so it goes back to the queue, waiting.
        ballast.unlink()
        db.when(job_id, "the job to start", lambda j: j.status == "running")
        ballast = fill(job_volume, leave=200 * MiB)
        job = db.when(job_id, "the job to wait for room", lambda j: j.status != "running")
        assert (job.status, job.attempts, job.error) == ("queued", 0, None)
        assert job.waiting_for is not None and f"waiting for disk space on {job_volume}" in job.waiting_for
        assert client.get(f"/jobs/{job_id}").json()["waiting_for"] == job.waiting_for
        wait_for(lambda: client.get("/health").json()["status"] == "degraded", 120, "/health to say degraded")

        # Room again: the job resumes and succeeds, on its first attempt that counted.
        ballast.unlink()
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED)
        assert (job.status, job.attempts, job.error, job.waiting_for) == ("succeeded", 1, None, None)
        assert client.get("/health").json()["status"] == "ok"
    finally:
        assert stop(worker) == 0
    assert [e for e, _ in db.epochs(job_id)] == [1, 2]
    with transaction(db.sessions) as s:
        names = {r.name for r in queries.artifact_rows(s, job_id)}
    assert {artifacts.CURVES, artifacts.METRICS_CSV, artifacts.WEIGHTS, artifacts.CONFUSION} <= names
    text = log.read_text()
    assert "back to the queue until there is room" in text
    assert "inline_container" not in text and "Traceback" not in text


def test_a_volume_with_room_for_one_checkpoint_but_not_two_trains_on_without_the_second(
    one_checkpoint_volume: Path, tmp_path: Path, sqlite_url: str
) -> None:
    # Epoch 1's checkpoint (684 MB) fits; epoch 2's cannot fit beside it, and only the job's own takes the room, so
    # waiting could never help: it trains on, still protected by epoch 1's.
    settings = make_settings(tmp_path, sqlite_url, artifact_dir=one_checkpoint_volume, heartbeat_seconds=0.5)
    db = Db(settings, SPEC)
    job_id = db.submit(epochs=3)
    first = tmp_path / "first.log"
    worker = start_worker(settings, first)
    try:
        wait_for(lambda: "training on without a new one" in first.read_text(), 300, "epoch 2's checkpoint skipped")
        job = db.when(job_id, "epoch 3 to begin", lambda j: j.epochs_completed == 2 and j.steps_done > 20)
        assert job.checkpoint is not None and "-e0001-s000000" in job.checkpoint  # epoch 1's, still
        worker.send_signal(signal.SIGTERM)  # a stop now must hand it back at epoch 1's checkpoint
        assert worker.wait(timeout=120) == 0
    finally:
        stop(worker)
    job = db.job(job_id)
    assert (job.status, job.waiting_for, job.checkpoint) == ("queued", None, job.checkpoint)
    assert "-e0001-s000000" in (job.checkpoint or "")

    # Taken again, it resumes from epoch 1 although the volume has no room for a second checkpoint: it never waits.
    second = tmp_path / "second.log"
    worker = start_worker(settings, second)
    try:
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED)
    finally:
        assert stop(worker) == 0
    assert (job.status, job.attempts, job.error, job.waiting_for) == ("succeeded", 1, None, None)
    assert [e for e, _ in db.epochs(job_id)] == [1, 2, 3]
    text = second.read_text()
    assert "resuming after epoch 1, step 0" in text
    assert "training on without a new one" in text and "waiting for disk space" not in text
    assert "Traceback" not in first.read_text() + text
