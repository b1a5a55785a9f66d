"""Which checkpoint a retry resumes from, what a checkpoint keeps, and what a failed background write leaves of an
epoch's files."""

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

from service import artifacts, jobs, queries
from service.config import Settings
from service.contracts import EpochRecord, Mistakes, WeightChange
from service.db import transaction
from service.models import utcnow
from service.spec import DEMO, JobSpec
from service.storage import make_store
from tests.helpers import Sessions, queue_jobs
from worker import checkpoint
from worker.checkpoint import Checkpoint, RngState
from worker.checkpoints import Checkpoints
from worker.data import Dataset
from worker.measures import WEIGHT_LAYERS
from worker.model import Kernels
from worker.pictures import confusion
from worker.pictures.epoch import JobPictures
from worker.publish import ArtifactWriter


def claim(settings: Settings, sessions: Sessions) -> jobs.Claim:
    """Take the queued job back from whoever held it (its lease lapsed) and claim it afresh."""
    with transaction(sessions) as s:
        jobs.reap_expired(s, now=utcnow() + timedelta(days=1))
        taken = jobs.claim_next(s, "w", False, settings.lease_seconds, settings.worker_alive_seconds)
    assert taken is not None
    return taken


def epoch_record(epoch: int) -> EpochRecord:
    """An epoch's record with its scalars only."""
    return EpochRecord(epoch=epoch, train_loss=2.0, test_loss=2.1, test_accuracy=0.2, seconds=1.0, images_per_second=9)


def checkpoint_after(epochs: int, step: int = 0, model: torch.Tensor | None = None) -> Checkpoint:
    """A checkpoint `step` steps into the epoch after `epochs` epochs; its "model" a small tensor (by default, filled
    with `epochs`): what the store's tests look at, without a real model's 228 MB."""
    kernels = Kernels(conv1=np.zeros((64, 3, 11, 11), np.float32), conv2=np.zeros((64, 5, 5), np.float32))
    return Checkpoint(
        spec=JobSpec.model_validate(DEMO),
        model={"weight": torch.full((3,), float(epochs)) if model is None else model},
        optimizer={"state": {}, "param_groups": []},
        rng=RngState(cpu=torch.get_rng_state(), shuffle=torch.Generator().manual_seed(epochs).get_state()),
        initial=kernels,
        history=[epoch_record(e) for e in range(1, epochs + 1)],
        step=step,
    )


def test_a_retry_resumes_from_a_checkpoint_written_but_never_recorded(settings: Settings, sessions: Sessions) -> None:
    queue_jobs(sessions, **DEMO)
    store = make_store(settings)
    first = claim(settings, sessions)
    saved = Checkpoints(store, sessions, first)
    saved.commit(saved.save(checkpoint_after(1)))  # recorded: the job points at it
    saved.save(checkpoint_after(2))  # written; the worker died before recording it

    second = claim(settings, sessions)
    assert second.checkpoint is not None and "-e0001-" in second.checkpoint  # the row still names epoch 1's
    resumed = Checkpoints(store, sessions, second).load()
    assert resumed is not None and len(resumed.history) == 2


def test_an_unreadable_newest_checkpoint_is_passed_over_for_the_recorded_one(
    settings: Settings, sessions: Sessions
) -> None:
    (job_id,) = queue_jobs(sessions, **DEMO)
    store = make_store(settings)
    first = claim(settings, sessions)
    saved = Checkpoints(store, sessions, first)
    saved.commit(saved.save(checkpoint_after(1)))
    torn = settings.artifact_dir / str(job_id) / "checkpoints" / artifacts.checkpoint_name(first.token, 2, 0)
    torn.write_bytes(b"PK\x03\x04 cut short")

    resumed = Checkpoints(store, sessions, claim(settings, sessions)).load()
    assert resumed is not None and len(resumed.history) == 1


def test_a_checkpoint_reads_back_as_it_was_saved_mid_epoch_extras_and_all(tmp_path: Path) -> None:
    extras = {"loss_sum": 7.25, "step_losses": torch.arange(3.0), "previous_weights": {"w": torch.ones(2)}}
    saved = replace(checkpoint_after(2, step=3), **extras)
    size = checkpoint.save(saved.to_dict(), tmp_path / "c.pt")
    assert size == (tmp_path / "c.pt").stat().st_size
    again = Checkpoint.from_dict(checkpoint.load(tmp_path / "c.pt"))
    assert again.position == (3, 3)  # three steps into epoch 3
    assert (again.spec, again.history, again.step, again.loss_sum) == (saved.spec, saved.history, 3, 7.25)
    assert torch.equal(again.model["weight"], saved.model["weight"])
    assert torch.equal(again.rng.cpu, saved.rng.cpu) and torch.equal(again.rng.shuffle, saved.rng.shuffle)
    assert again.step_losses is not None and torch.equal(again.step_losses, torch.arange(3.0))
    assert again.previous_weights is not None and torch.equal(again.previous_weights["w"], torch.ones(2))
    assert np.array_equal(again.initial.conv1, saved.initial.conv1)


def test_a_file_that_is_not_a_checkpoint_is_passed_over_for_the_recorded_one(
    settings: Settings, sessions: Sessions
) -> None:
    (job_id,) = queue_jobs(sessions, **DEMO)
    store = make_store(settings)
    first = claim(settings, sessions)
    saved = Checkpoints(store, sessions, first)
    saved.commit(saved.save(checkpoint_after(1)))
    # Readable by torch, but a state_dict (what weights.pt holds), not a checkpoint: it has no history to go on from.
    stray = settings.artifact_dir / str(job_id) / "checkpoints" / artifacts.checkpoint_name(first.token, 2, 0)
    checkpoint.save({"features.0.weight": torch.ones(2)}, stray)

    resumed = Checkpoints(store, sessions, claim(settings, sessions)).load()
    assert resumed is not None and len(resumed.history) == 1


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

    monkeypatch.setattr(confusion, "draw_confusion", broken)
    kernels = Kernels(conv1=np.zeros((64, 3, 11, 11), np.float32), conv2=np.zeros((64, 5, 5), np.float32))
    row = EpochRecord(
        epoch=1,
        train_loss=1.0,
        test_loss=1.0,
        test_accuracy=0.5,
        seconds=1.0,
        images_per_second=4.0,
        step_losses=[1.0],
        confusion=[[1] * 10] * 10,
        classes=list(data.classes),
        weight_change={layer: WeightChange(from_initial=0.1, from_previous=0.1) for layer in WEIGHT_LAYERS},
        mistakes=Mistakes(indices=[1], predicted=[0], count=1),
    )
    with pytest.raises(OSError, match="could not be drawn"):
        pictures.epoch([row], kernels, kernels)
    with transaction(sessions) as s:
        names = {r.name for r in queries.artifact_rows(s, job_id)}
    assert artifacts.CONFUSION not in names
    assert {artifacts.CURVES, artifacts.METRICS_CSV, artifacts.MISTAKES, artifacts.kernel_history(1)} <= names
    assert Path(settings.artifact_dir, str(job_id), artifacts.CURVES).is_file()
