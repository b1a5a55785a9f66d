"""Which network a job's "look inside" requests use: a succeeded job's `weights.pt`, else the newest checkpoint of a
running, cancelled or failed one (saying which epoch), fetched onto this machine from a bucket when need be."""

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import Row
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import artifacts, queries
from service.api.deps import Database, JobIdPath, ReadDatabaseDep, SettingsDep, StoreDep
from service.config import Settings
from service.contracts import DatasetRef, ModelRef, WeightsUsed
from service.errors import Conflict, NotFound, ServiceUnavailable
from service.models import Status
from service.spec import TEST_SIZE, JobSpec
from service.storage import ArtifactStore, checkpoint_key, local_copy

# Trained weights (228 MB) and checkpoints (~700 MB with the optimizer's state) fetched from a bucket and kept here;
# the same folder as predictions' copies, so that one job's weights are fetched once for both.
WEIGHTS_KEPT = 4
WEIGHTS_FOLDER = "weights"


@dataclass(frozen=True)
class Network:
    """A job's network as the worker-side process needs it named, and what the pictures call it."""

    model: ModelRef
    data: DatasetRef
    classes: list[str] | None
    title: str
    test_images: int  # how many test images the job has: test_index must be below this

    def key(self, *request: object) -> str:
        """A cache key for `request` on these weights."""
        return " ".join(map(str, (self.model.key, *request)))


def _find(session: Session, job_id: int) -> tuple[Row[Any], str, str, WeightsUsed, list[str] | None]:
    job = queries.job_row(session, job_id)
    if job.status == Status.SUCCEEDED:
        row = queries.artifact_row(session, job_id, artifacts.WEIGHTS)
        used = WeightsUsed(job_id=job_id, source="weights", epoch=job.epochs_completed)
        stored, version = row.key, row.updated_at.isoformat()
    elif job.checkpoint and (position := artifacts.checkpoint_position(job.checkpoint)) is not None:
        epoch, step = position
        used = WeightsUsed(job_id=job_id, source="checkpoint", epoch=epoch, step=step)
        stored = version = checkpoint_key(job_id, job.checkpoint)  # a checkpoint's name is never reused
    else:
        raise Conflict(
            f"job {job_id} is {job.status} and has no weights to look at yet: a succeeded job has weights.pt, a "
            "running one a checkpoint after its first epoch"
        )
    try:
        _, epoch_row = queries.evaluated_epoch(session, job_id, None)
        classes: list[str] | None = epoch_row.details["classes"]
    except NotFound:  # stopped before its first evaluation: the worker reads the names from the dataset
        classes = None
    return job, stored, version, used, classes


async def network(db: Database, store: ArtifactStore, settings: Settings, job_id: int) -> Network:
    """The network job `job_id` is looked inside with; Conflict when it has none yet."""
    job, stored, version, used, classes = await db.run(lambda s: _find(s, job_id))
    try:
        path = await run_in_threadpool(local_copy, store, stored, settings.cache_dir / WEIGHTS_FOLDER, WEIGHTS_KEPT)
    except FileNotFoundError:
        if used.source == "checkpoint":  # replaced by a newer one between the query and the fetch
            raise ServiceUnavailable(f"job {job_id}'s checkpoint was just replaced; try again") from None
        raise NotFound(f"job {job_id}'s {artifacts.WEIGHTS} is missing from the store") from None
    spec = JobSpec.model_validate(job.spec)
    name = f" · {job.name}" if job.name else ""
    return Network(
        model=ModelRef(path=str(path), key=f"{stored}@{version}", image_size=spec.image_size, used=used),
        data=dataset_ref(spec, settings),
        classes=classes,
        title=f"job {job_id}{name} · {used.describe()}",
        test_images=spec.test_samples or TEST_SIZE,
    )


async def _job_network(job_id: JobIdPath, db: ReadDatabaseDep, store: StoreDep, settings: SettingsDep) -> Network:
    return await network(db, store, settings, job_id)


# The job's network as a dependency: resolved (404, 409) before a route's own parameters are checked, and once per
# request however many dependencies ask for it.
JobNetwork = Annotated[Network, Depends(_job_network)]


def dataset_ref(spec: JobSpec, settings: Settings) -> DatasetRef:
    """The job's dataset as it drew it, for the worker-side process to draw again."""
    return DatasetRef(
        dataset=spec.dataset,
        data_dir=str(Path(settings.data_dir).resolve()),
        train_samples=spec.train_samples,
        test_samples=spec.test_samples,
        seed=spec.seed,
    )
