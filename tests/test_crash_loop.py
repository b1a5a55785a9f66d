"""Workers killed (SIGKILL) more often than an epoch lasts: checkpoints taken by time move the job on, runs that got
somewhere do not count against `max_attempts`, and runs that got nowhere say so before the job fails."""

from pathlib import Path

import pytest

from bench.processes import start_worker, stop, wait_for
from service import artifacts
from service.config import Settings
from service.models import FINISHED, Job
from tests.helpers import LIGHT_JOB, Db, make_settings

pytestmark = pytest.mark.slow

STEPS = 20  # an epoch: 160 images in batches of 8
SPEC = {**LIGHT_JOB, "train_samples": 8 * STEPS}
KILLS = 2


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    """Short leases, and a checkpoint due a second after the last."""
    return make_settings(
        tmp_path, sqlite_url, lease_seconds=4.0, heartbeat_seconds=0.5, worker_alive_seconds=5.0, checkpoint_seconds=1
    )


def mid_epoch_checkpoint_after(previous: str | None):
    """True once the job points at a mid-epoch checkpoint other than `previous`."""

    def check(job: Job) -> bool:
        position = artifacts.checkpoint_position(job.checkpoint or "")
        return job.checkpoint != previous and position is not None and position[1] > 0

    return check


def test_runs_shorter_than_an_epoch_still_progress_by_timed_checkpoints(settings: Settings, tmp_path: Path) -> None:
    db = Db(settings, SPEC)
    # Without progress, two killed runs would fail it: each of these makes some, so the job lives on.
    job_id = db.submit(epochs=1, max_attempts=2)  # the kills land a few steps in: one epoch of STEPS is enough
    positions = []
    checkpoint = None
    for life in range(KILLS):
        worker = start_worker(settings, tmp_path / f"life-{life}.log")
        job = db.when(job_id, f"a newer mid-epoch checkpoint in life {life}", mid_epoch_checkpoint_after(checkpoint))
        worker.kill()  # SIGKILL, mid-epoch: the lease lapses
        worker.wait()
        checkpoint = job.checkpoint
        positions.append(artifacts.checkpoint_position(checkpoint or ""))
    assert positions == sorted(positions) and len(set(positions)) == KILLS  # each run went further than the last

    # The last run needs no timed checkpoints: without them it trains instead of writing one every second.
    last = start_worker(settings.model_copy(update={"checkpoint_seconds": 300}), tmp_path / "last.log")
    try:
        job = db.when(job_id, "the job to finish", lambda j: j.status in FINISHED)
    finally:
        assert stop(last) == 0
    assert (job.status, job.error, job.attempts) == ("succeeded", None, KILLS + 1)
    assert [e for e, _ in db.epochs(job_id)] == [1]
    assert [len(d["step_losses"]) for d in db.details(job_id)] == [STEPS]
    resumed = [(tmp_path / f"life-{life}.log").read_text() for life in range(1, KILLS)]
    assert all("resuming after epoch" in text for text in resumed)
    assert not any("without progress" in text for text in resumed)


def test_a_job_whose_runs_keep_dying_without_progress_says_so_and_fails_naming_where(
    settings: Settings, tmp_path: Path
) -> None:
    db = Db(settings, SPEC)
    doomed = db.submit(epochs=50, max_attempts=3)
    for run in (1, 2, 3):  # the test plays a recurring OOM kill: each worker dies as soon as it runs `doomed`
        log = tmp_path / f"run-{run}.log"
        worker = start_worker(settings, log)
        db.when(doomed, f"run {run}", lambda j, r=run: j.status == "running" and j.attempts == r)
        # The claim's line, and from the second run on the warning logged just after it: a kill between the two
        # would leave the warning unsaid.
        line = "claimed by worker" if run == 1 else "without progress since"
        wait_for(lambda log=log, line=line: line in log.read_text(), 60, f"the log line {line!r}")
        worker.kill()
        worker.wait()
    said = (tmp_path / "run-3.log").read_text()
    assert "claimed 3 times without progress since the start: the last 2 run(s) ended" in said
    assert "it fails after 3 such runs in a row" in said
    survivor = start_worker(settings, tmp_path / "survivor.log")
    try:
        job = db.when(doomed, "the reaper to fail it", lambda j: j.status == "failed")
    finally:
        assert stop(survivor) == 0
    assert job.error == (
        "the worker running this job stopped responding on each of its last 3 attempts, none of which got past the "
        "start"
    )
