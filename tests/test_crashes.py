"""Workers killed, paused and stopped for real: no job is lost, none runs twice, metrics stay contiguous."""

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from bench.processes import ROOT, STARTED, start_worker, stop, wait_for
from service.config import Settings
from service.models import FINISHED, Job
from tests.helpers import LIGHT_JOB, Db, make_settings, sqlite_database
from worker import checkpoint
from worker.loop import Worker

pytestmark = pytest.mark.slow

SPEC = LIGHT_JOB  # 10 steps an epoch
# The interrupted runs that are compared with one that was not: at most this many epochs, from this seed.
REFERENCE_EPOCHS, REFERENCE_SEED = 3, 5


def short_leases(tmp_path: Path, url: str) -> Settings:
    """Short leases, so that a dead worker's job comes back within seconds."""
    return make_settings(tmp_path, url, lease_seconds=4.0, heartbeat_seconds=0.5, worker_alive_seconds=5.0)


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return short_leases(tmp_path, sqlite_url)


@pytest.fixture
def both_databases(tmp_path: Path, database_url: str) -> Settings:
    """For the central scenario, which runs on SQLite and on Postgres."""
    return short_leases(tmp_path, database_url)


@dataclass(frozen=True)
class Uninterrupted:
    """What a run of SPEC that no one stopped records, epoch by epoch: its train losses and further measurements."""

    losses: list[float]
    details: list[dict]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Uninterrupted:
    """SPEC for REFERENCE_EPOCHS epochs with REFERENCE_SEED, trained once for the module by a worker in this process:
    the run each interrupted one must match (a shorter run's epochs are its first ones, with nothing that depends on
    the number of epochs). Which database records it does not change what it learns."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    settings = make_settings(folder, sqlite_database(folder))
    db = Db(settings, SPEC)
    job_id = db.submit(epochs=REFERENCE_EPOCHS, seed=REFERENCE_SEED)
    Worker(settings).run(burst=True)
    assert db.job(job_id).status == "succeeded"
    return Uninterrupted([loss for _, loss in db.epochs(job_id)], db.details(job_id))


def assert_same_history(resumed: list[dict], uninterrupted: list[dict]) -> None:
    """One record per epoch, each with all 10 step losses, and the same measurements as a run that was not stopped."""
    assert [len(d["step_losses"]) for d in resumed] == [10] * len(uninterrupted)
    for got, want in zip(resumed, uninterrupted, strict=True):
        assert got["step_losses"] == pytest.approx(want["step_losses"], rel=1e-4)
        assert got["confusion"] == want["confusion"]
        for layer, change in want["weight_change"].items():
            assert got["weight_change"][layer] == pytest.approx(change, rel=1e-3)


def mid_epoch_after_a_checkpoint(job: Job) -> bool:
    """Running, with a checkpoint recorded, and some steps into the epoch after it (10 steps an epoch). Of a job of 3
    epochs: the worker waits for an epoch's checkpoint at the end of the next, so epoch 3 at the latest qualifies."""
    done, epochs = job.steps_done, job.epochs_completed
    return job.checkpoint is not None and epochs < 3 and done > 10 * epochs


def mid_epoch(epoch: int):
    """True once the job is past the first step of `epoch` (80 images / 8 = 10 steps an epoch)."""
    return lambda j: j.epochs_completed == epoch - 1 and j.steps_done >= (epoch - 1) * 10 + 2


def test_kill_9_mid_epoch_resumes_elsewhere_with_contiguous_metrics_matching_an_uninterrupted_run(
    both_databases: Settings, tmp_path: Path, uninterrupted: Uninterrupted
) -> None:
    settings = both_databases
    db = Db(settings, SPEC)
    job_id = db.submit(epochs=REFERENCE_EPOCHS, seed=REFERENCE_SEED)
    victim = start_worker(settings, tmp_path / "victim.log")
    db.when(job_id, "a checkpoint, then steps past it", mid_epoch_after_a_checkpoint)
    victim.kill()  # SIGKILL: no handler runs, the lease is left to lapse
    victim.wait()

    rescuer = start_worker(settings, tmp_path / "rescuer.log")
    try:
        job = db.when(job_id, "the job to finish elsewhere", lambda j: j.status in FINISHED)
    finally:
        assert stop(rescuer) == 0
    assert (job.status, job.error, job.attempts) == ("succeeded", None, 2)
    assert "resuming after epoch" in (tmp_path / "rescuer.log").read_text()
    resumed = db.epochs(job_id)
    assert [e for e, _ in resumed] == [1, 2, 3]

    assert [round(loss, 4) for _, loss in resumed] == [round(loss, 4) for loss in uninterrupted.losses]
    assert_same_history(db.details(job_id), uninterrupted.details)
    assert db.kernel_history(job_id) == [0, 1, 2, 3]  # the kernels' numbers of every epoch, exactly once


def test_sigstop_past_the_lease_then_sigcont_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    db = Db(settings, SPEC)
    job_id = db.submit(epochs=2)
    paused = start_worker(settings, tmp_path / "paused.log")
    db.when(job_id, "training to start", mid_epoch(1))
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        # Started at once: it takes the job only once the paused worker's lease has lapsed.
        rescuer = start_worker(settings, tmp_path / "rescuer.log")
        db.when(job_id, "another worker to take over", lambda j: j.attempts == 2 and j.status == "running")
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    try:
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED)
        assert (job.status, job.attempts) == ("succeeded", 2)
        assert [e for e, _ in db.epochs(job_id)] == [1, 2]
        wait_for(lambda: "lease lost" in (tmp_path / "paused.log").read_text(), 120, "the paused worker to give up")
    finally:
        assert stop(rescuer) == 0
        assert stop(paused) == 0
    assert job.worker_id is not None and job.worker_id.split("-")[-2] == str(rescuer.pid)


def test_a_job_that_kills_its_worker_every_time_fails_after_max_attempts_and_others_run(
    settings: Settings, tmp_path: Path
) -> None:
    db = Db(settings, SPEC)
    doomed = db.submit(epochs=50, max_attempts=2)
    fine = db.submit(epochs=1)
    for attempt in (1, 2):  # the test plays the OOM killer: each worker dies as soon as it runs `doomed`
        worker = start_worker(settings, tmp_path / f"doomed-{attempt}.log")
        db.when(doomed, f"attempt {attempt}", lambda j, a=attempt: j.status == "running" and j.attempts == a)
        worker.kill()
        worker.wait()
    survivor = start_worker(settings, tmp_path / "survivor.log")
    try:
        job = db.when(doomed, "the reaper to fail it", lambda j: j.status == "failed")
        assert job.error == (
            "the worker running this job stopped responding on each of its last 2 attempts, none of which got past "
            "the start"
        )
        other = db.when(fine, "the other job to run", lambda j: j.status in FINISHED)
        assert other.status == "succeeded"
    finally:
        assert stop(survivor) == 0


def test_first_sigterm_checkpoints_and_hands_the_job_back_then_it_resumes(
    settings: Settings, tmp_path: Path, uninterrupted: Uninterrupted
) -> None:
    db = Db(settings, SPEC)
    job_id = db.submit(epochs=2, seed=REFERENCE_SEED)
    worker = start_worker(settings, tmp_path / "first.log")
    db.when(job_id, "epoch 2 to begin", mid_epoch(2))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=120) == 0  # within the epoch: the checkpoint below is mid-epoch 2
    job = db.job(job_id)
    assert (job.status, job.attempts, job.epochs_completed) == ("queued", 0, 1)
    assert job.checkpoint is not None and "-e0002-s" in job.checkpoint  # mid-epoch 2
    state = checkpoint.load(settings.artifact_dir / str(job_id) / "checkpoints" / job.checkpoint)
    assert state["step"] >= 2 and len(state["history"]) == 1

    second = start_worker(settings, tmp_path / "second.log")
    try:
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED)
    finally:
        assert stop(second) == 0
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert [e for e, _ in db.epochs(job_id)] == [1, 2]
    assert "resuming after epoch 1, step" in (tmp_path / "second.log").read_text()
    # Resumed mid-epoch: epoch 2's step losses and weight change span both attempts, without gaps or repeats.
    assert_same_history(db.details(job_id), uninterrupted.details[:2])


def test_second_sigterm_exits_at_once_and_the_lease_brings_the_job_back(settings: Settings, tmp_path: Path) -> None:
    db = Db(settings, SPEC)
    job_id = db.submit(epochs=1)
    worker = start_worker(settings, tmp_path / "twice.log")
    db.when(job_id, "training to start", mid_epoch(1))
    worker.send_signal(signal.SIGTERM)
    log = tmp_path / "twice.log"
    wait_for(lambda: "finishing up" in log.read_text(), 60, "the first signal to be handled")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 128 + signal.SIGTERM  # not 0: it did not finish up
    rescuer = start_worker(settings, tmp_path / "rescuer.log")
    try:
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED)
    finally:
        assert stop(rescuer) == 0
    assert job.status == "succeeded"
    assert [e for e, _ in db.epochs(job_id)] == [1]


def test_a_job_past_max_runtime_is_stopped_and_failed(settings: Settings) -> None:
    db = Db(settings, SPEC)
    job_id = db.submit(epochs=50, max_runtime_seconds=3)
    Worker(settings).run(burst=True)
    job = db.job(job_id)
    assert job.status == "failed"
    assert job.error == "stopped after running longer than max_runtime_seconds (3 s)"


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_usable(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    checkpoint.save({"epoch": 1, "w": torch.ones(3)}, path)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, torch; from pathlib import Path; from worker import checkpoint; "
            "checkpoint.save({'epoch': 2, 'w': torch.zeros(400_000_000, dtype=torch.uint8)}, Path(sys.argv[1]))",
            str(path),
        ],
        cwd=ROOT,
    )
    STARTED.append(writer)
    wait_for(lambda: any(tmp_path.glob(".checkpoint.pt.*.tmp")) or writer.poll() is not None, 60, "the write")
    writer.kill()
    writer.wait()
    assert writer.returncode == -signal.SIGKILL, "the write finished before it could be interrupted"
    state = checkpoint.load(path)
    assert state["epoch"] == 1
    assert torch.equal(state["w"], torch.ones(3))
