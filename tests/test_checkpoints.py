"""Which checkpoint a retry resumes from, and what a failed background write leaves of an epoch's files."""

from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from service import artifacts, jobs, queries
from service.config import Settings
from service.db import transaction
from service.models import utcnow
from service.spec import DEMO, JobSpec
from service.storage import make_store
from tests.helpers import Sessions, queue_jobs
from worker.checkpoint import Checkpoints
from worker.data import Dataset
from worker.hooks import EpochResult
from worker.measures import WEIGHT_LAYERS
from worker.model import Kernels
from worker.pictures import charts
from worker.pictures.epoch import JobPictures
from worker.publish import ArtifactWriter


def claim(settings: Settings, sessions: Sessions) -> jobs.Claim:
    """Take the queued job back from whoever held it (its lease lapsed) and claim it afresh."""
    with transaction(sessions) as s:
        jobs.reap_expired(s, now=utcnow() + timedelta(days=1))
        taken = jobs.claim_next(s, "w", False, settings.lease_seconds, settings.worker_alive_seconds)
    assert taken is not None
    return taken


def state(epochs: int) -> dict[str, Any]:
    """A checkpoint as `fit` makes one, after `epochs` epochs (only what the tests look at)."""
    return {"history": [{"epoch": e} for e in range(1, epochs + 1)], "step": 0, "model": torch.full((3,), epochs)}


def test_a_retry_resumes_from_a_checkpoint_written_but_never_recorded(settings: Settings, sessions: Sessions) -> None:
    queue_jobs(sessions, **DEMO)
    store = make_store(settings)
    first = claim(settings, sessions)
    saved = Checkpoints(store, sessions, first)
    saved.commit(saved.save(state(1), mid_epoch=False))  # recorded: the job points at it
    saved.save(state(2), mid_epoch=False)  # written; the worker died before recording it

    second = claim(settings, sessions)
    assert second.checkpoint is not None and "-e0001-" in second.checkpoint  # the row still names epoch 1's
    resumed = Checkpoints(store, sessions, second).load()
    assert resumed is not None and len(resumed["history"]) == 2


def test_an_unreadable_newest_checkpoint_is_passed_over_for_the_recorded_one(
    settings: Settings, sessions: Sessions
) -> None:
    (job_id,) = queue_jobs(sessions, **DEMO)
    store = make_store(settings)
    first = claim(settings, sessions)
    saved = Checkpoints(store, sessions, first)
    saved.commit(saved.save(state(1), mid_epoch=False))
    torn = settings.artifact_dir / str(job_id) / "checkpoints" / artifacts.checkpoint_name(first.token, 2, 0)
    torn.write_bytes(b"PK\x03\x04 cut short")

    resumed = Checkpoints(store, sessions, claim(settings, sessions)).load()
    assert resumed is not None and len(resumed["history"]) == 1


def test_one_picture_that_fails_does_not_cost_the_epoch_its_other_files(
    settings: Settings, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    (job_id,) = queue_jobs(sessions, **DEMO)
    taken = claim(settings, sessions)
    files = ArtifactWriter(make_store(settings), sessions, taken)
    images = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    classes = tuple(f"class {i}" for i in range(10))
    data = Dataset(images, np.zeros(4, dtype=np.int64), images, np.arange(4, dtype=np.int64), classes)
    pictures = JobPictures(files, JobSpec.model_validate(DEMO), data)

    def broken(*_: object, **__: object) -> None:
        raise OSError("the confusion matrix could not be drawn")

    monkeypatch.setattr(charts, "draw_confusion", broken)
    kernels = Kernels(conv1=np.zeros((64, 3, 11, 11), np.float32), conv2=np.zeros((64, 5, 5), np.float32))
    row = EpochResult(
        epoch=1,
        train_loss=1.0,
        test_loss=1.0,
        test_accuracy=0.5,
        seconds=1.0,
        images_per_second=4.0,
        step_losses=[1.0],
        confusion=[[1] * 10] * 10,
        classes=list(data.classes),
        weight_change={layer: {"from_initial": 0.1, "from_previous": 0.1} for layer in WEIGHT_LAYERS},
        mistakes={"indices": [1], "predicted": [0], "count": 1},
    )
    with pytest.raises(OSError, match="could not be drawn"):
        pictures.epoch([asdict(row)], kernels, kernels)
    with transaction(sessions) as s:
        names = {r.name for r in queries.artifact_rows(s, job_id)}
    assert artifacts.CONFUSION not in names
    assert {artifacts.CURVES, artifacts.METRICS_CSV, artifacts.MISTAKES, artifacts.kernel_history(1)} <= names
    assert Path(settings.artifact_dir, str(job_id), artifacts.CURVES).is_file()
