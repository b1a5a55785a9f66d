"""A stopped job goes on from its checkpoint (`POST /jobs/{id}/resume`), a succeeded one trains more epochs from its
final weights and optimizer state (`POST /jobs/{id}/continue`): both as the same job, trained for real, and both
end where an uninterrupted job of as many epochs ends, to the last digit."""

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from tests.helpers import Db, Sessions, assert_error, queue_jobs
from worker.hooks import EpochEnd, StopReason
from worker.loop import Worker
from worker.runner import JobRun

# Two steps an epoch on AlexNet's smallest input: a few seconds an epoch on a CPU.
TINY: dict[str, Any] = {
    "dataset": "synthetic",
    "image_size": 63,
    "batch_size": 16,
    "train_samples": 32,
    "test_samples": 16,
    "device": "cpu",
    "epochs": 2,
}


class CancelledAfterFirstEpoch(JobRun):
    """A run told to cancel as its first epoch ends, as the heartbeat tells it when a user asks."""

    def on_epoch_end(self, end: EpochEnd) -> None:
        super().on_epoch_end(end)
        if end.result.epoch == 1:
            self.stop_reason = StopReason.CANCEL


def losses(db: Db, job_id: int) -> list[tuple[int, float]]:
    return db.epochs(job_id)


@pytest.mark.slow
def test_a_cancelled_job_resumes_from_its_checkpoint_as_if_never_stopped(
    settings: Settings, sessions: Sessions, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker")  # the job's log keeps what the worker's logger lets through
    stopped, whole = queue_jobs(sessions, 2, **TINY)
    Worker(settings, run_factory=CancelledAfterFirstEpoch).run(burst=True)  # takes both: the second is cancelled too
    db = Db(settings)
    assert db.job(stopped).status == "cancelled" and db.job(whole).status == "cancelled"
    listing = client.get(f"/jobs/{stopped}/artifacts").json()
    checkpoint = listing["checkpoint"]
    assert (checkpoint["epoch"], checkpoint["step"]) == (1, 0)
    assert checkpoint["size"] > 600_000_000  # the weights and Adam's two moments: 3 × 228 MB

    resumed = client.post(f"/jobs/{stopped}/resume")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["id"], resumed.json()["status"]) == (stopped, "queued")
    assert resumed.json()["cancel_requested"] is False
    assert_error(client.post(f"/jobs/{stopped}/resume"), 409, "conflict")  # queued already: once is enough

    with_fresh = queue_jobs(sessions, **TINY)[0]  # the same spec, never stopped
    Worker(settings).run(burst=True)
    assert db.job(stopped).status == "succeeded"
    assert [e for e, _ in losses(db, stopped)] == [1, 2]
    assert losses(db, stopped) == losses(db, with_fresh)  # exactly: the same numbers, not close ones
    log = client.get(f"/jobs/{stopped}/logs").text
    assert "resuming after epoch 1, step 0" in log and "cancelled" in log  # one history, both runs in it
    events = client.get(f"/jobs/{stopped}/events").text
    assert events.count("event: end") == 2  # the stream replays both runs' ends, and closes after the last


@pytest.mark.slow
def test_a_succeeded_job_continues_for_more_epochs_as_one_of_that_many(
    settings: Settings, sessions: Sessions, client: TestClient
) -> None:
    short, long = queue_jobs(sessions, **{**TINY, "epochs": 1}), queue_jobs(sessions, **TINY)
    Worker(settings).run(burst=True)
    (short_id,), (long_id,) = short, long
    checkpoint = client.get(f"/jobs/{short_id}/artifacts").json()["checkpoint"]
    assert (checkpoint["epoch"], checkpoint["step"]) == (1, 0)  # the final one, kept for this

    continued = client.post(f"/jobs/{short_id}/continue", json={"epochs": 1})
    assert continued.status_code == 200, continued.text
    body = continued.json()
    assert (body["id"], body["status"], body["spec"]["epochs"]) == (short_id, "queued", 2)
    Worker(settings).run(burst=True)

    db = Db(settings)
    assert db.job(short_id).status == "succeeded"
    assert losses(db, short_id) == losses(db, long_id)
    assert client.get(f"/jobs/{short_id}/artifacts").json()["checkpoint"]["epoch"] == 2
    assert client.get(f"/jobs/{short_id}").json()["progress"]["epochs_completed"] == 2


def test_resume_and_continue_refuse_what_they_cannot_do(
    settings: Settings, sessions: Sessions, client: TestClient
) -> None:
    queued, never_ran = queue_jobs(sessions, 2, **TINY)
    client.post(f"/jobs/{never_ran}/cancel")

    error = assert_error(client.post(f"/jobs/{queued}/resume"), 409, "conflict")
    assert error["message"] == f"job {queued} is queued; only a cancelled or failed job is resumed"
    error = assert_error(client.post(f"/jobs/{never_ran}/resume"), 409, "conflict")
    assert "no checkpoint to resume from" in error["message"] and f"/jobs/{never_ran}/rerun" in error["message"]
    error = assert_error(client.post(f"/jobs/{never_ran}/continue", json={"epochs": 2}), 409, "conflict")
    assert error["message"] == f"job {never_ran} is cancelled; only a succeeded job is continued"
    assert_error(client.post("/jobs/999/resume"), 404, "not_found")

    for body in ({}, {"epochs": 0}, {"epochs": 1001}, {"epochs": 1, "lr": 1}):
        assert_error(client.post(f"/jobs/{queued}/continue", json=body), 422, "invalid_request")
    assert client.get(f"/jobs/{never_ran}/artifacts").json()["checkpoint"] is None
