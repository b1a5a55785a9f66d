"""Pictures of a job's history: the kernel grids at any epoch and their evolution as a GIF, and the confusion
matrix, mistakes and weight change. The latest of each is a file the worker published; any other epoch is drawn
on request from the numbers the worker kept (`service.api.renderer`)."""

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from sqlalchemy import Row, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import artifacts, queries, records
from service.api.deps import JobIdPath, ReadDatabaseDep, RendererDep, SettingsDep, StoreDep
from service.api.files import send_picture, serve_artifact
from service.api.presenter import PNG, Responses, json_response
from service.api.schemas import KernelImageOut, KernelList
from service.artifacts import Layer, Stage
from service.config import Settings
from service.contracts import ConfusionDraw, EvolutionDraw, KernelsDraw, MistakesDraw
from service.errors import NotFound
from service.models import Worker
from service.spec import JobSpec, run_title
from service.storage import ArtifactStore, local_copy

Epoch = Annotated[
    int | None, Query(ge=0, le=queries.MAX_ID, description="Which epoch (0: before training); the latest by default.")
]
GIF: Responses = {200: {"content": {"image/gif": {}}, "description": "An animated GIF"}}

router = APIRouter(prefix="/jobs/{job_id}", tags=["pictures"])


def _history(session: Session, job_id: int) -> tuple[Row[Any], dict[int, Row[Any]]]:
    """The job and its kernel-history files by epoch."""
    job = queries.job_row(session, job_id)
    rows = queries.artifact_rows(session, job_id, prefix=artifacts.KERNEL_HISTORY_PREFIX)
    by_epoch = {e: r for r in rows if (e := artifacts.parse_kernel_history(r.name)) is not None}
    return job, by_epoch


def _title(session: Session, job: Row[Any]) -> str:
    """The run's title, as the worker titles the pictures it draws: with the precision it trained in, which for
    `auto` is bf16 where its worker has it natively (a CUDA GPU, or a CPU that the worker registered as such)."""
    spec = JobSpec.model_validate(job.spec)
    precision = spec.precision
    if precision == "auto":
        native = session.scalar(select(Worker.bf16_native).where(Worker.id == job.worker_id))
        precision = "bf16" if job.device == "cuda" or native else "fp32"
    return run_title(spec.dataset, spec.optimizer, spec.learning_rate, spec.batch_size, spec.image_size, precision)


def _evaluated(session: Session, job_id: int, epoch: int) -> tuple[Row[Any], Row[Any], str]:
    """The job, its evaluated epoch `epoch` and its title."""
    job, row = queries.evaluated_epoch(session, job_id, epoch)
    return job, row, _title(session, job)


async def _sources(store: ArtifactStore, settings: Settings, rows: list[Row[Any]]) -> list[str]:
    """Local files holding `rows`' numbers for the drawing process: the store's own, or (from a bucket) copies
    fetched into the cache folder."""

    def fetch() -> list[str]:
        paths = []
        for row in rows:
            try:
                paths.append(str(local_copy(store, row.key, settings.cache_dir / "store")))
            except FileNotFoundError:
                raise NotFound(f"{row.name} is not in the store") from None
        return paths

    return await run_in_threadpool(fetch)


@router.get("/kernels", response_model=KernelList)
async def list_kernels(job_id: JobIdPath, db: ReadDatabaseDep) -> Response:
    """The kernel images drawn so far (conv1 and conv2; initial, trained, diff) and the epochs they exist for."""

    def read(session: Session) -> KernelList:
        _, history = _history(session, job_id)
        kernels = []
        for row in queries.artifact_rows(session, job_id, prefix=artifacts.KERNELS_PREFIX):
            image = artifacts.parse_kernel_image(row.name)
            if image is None:  # another kind of file under kernels/: not a grid this list describes
                continue
            kernels.append(
                KernelImageOut(
                    layer=image.layer,
                    stage=image.stage,
                    size=row.size,
                    updated_at=row.updated_at,
                    url=f"/jobs/{job_id}/{row.name}",
                )
            )
        return KernelList(job_id=job_id, kernels=kernels, epochs=sorted(history))

    return json_response(await db.run(read))


@router.get("/kernels/{layer}/{stage}.png", response_class=FileResponse, responses=PNG)
async def get_kernel_image(
    job_id: JobIdPath,
    layer: Layer,
    stage: Stage,
    db: ReadDatabaseDep,
    store: StoreDep,
    renderer: RendererDep,
    settings: SettingsDep,
    epoch: Epoch = None,
) -> Response:
    """One kernel grid: `trained` after epoch `epoch` (0 = the initial weights), `diff` = its change since epoch 0,
    `initial` = before training. Without `epoch`, the latest."""
    if epoch is None or stage == "initial":
        return await serve_artifact(db, store, job_id, artifacts.kernel_image(layer, stage))
    job, history = await db.run(lambda s: _history(s, job_id))
    if epoch not in history:
        raise queries.epoch_not_found(job_id, epoch, sorted(history))
    used = [history[0], history[epoch]] if stage == "diff" and 0 in history else [history[epoch]]
    request = KernelsDraw(
        layer=layer,
        stage=stage,
        epoch=epoch,
        filter=JobSpec.model_validate(job.spec).conv2_filter,
        sources=await _sources(store, settings, used),
    )
    key = f"kernels {job_id} {layer} {stage} {epoch} " + " ".join(f"{r.key}@{r.updated_at}" for r in used)
    return await send_picture(await renderer.draw(request, key, ".png"), "image/png")


@router.get("/kernels/{layer}/evolution.gif", response_class=FileResponse, responses=GIF)
async def get_kernel_evolution(
    job_id: JobIdPath,
    layer: Layer,
    db: ReadDatabaseDep,
    store: StoreDep,
    renderer: RendererDep,
    settings: SettingsDep,
    stage: Literal["trained", "diff"] = "trained",
) -> Response:
    """A layer's kernels over every epoch from 0, one frame an epoch; `diff` frames share one colour scale, so the
    change grows visibly."""
    job, history, title = await db.run(lambda s: (*_history(s, job_id), _title(s, queries.job_row(s, job_id))))
    if not history:
        raise NotFound(f"job {job_id} has no kernel history yet: it starts when training starts")
    rows = [history[e] for e in sorted(history)]
    spec = JobSpec.model_validate(job.spec)
    request = EvolutionDraw(
        layer=layer,
        stage=stage,
        filter=spec.conv2_filter,
        title=title,
        sources=await _sources(store, settings, rows),
    )
    key = f"evolution {job_id} {layer} {stage} " + " ".join(f"{r.key}@{r.updated_at}" for r in rows)
    return await send_picture(await renderer.draw(request, key, ".gif"), "image/gif")


@router.get("/confusion.png", response_class=FileResponse, responses=PNG)
async def get_confusion_image(
    job_id: JobIdPath, db: ReadDatabaseDep, store: StoreDep, renderer: RendererDep, epoch: Epoch = None
) -> Response:
    """The test set's confusion matrix after an epoch: counts, coloured by share of each true class."""
    if epoch is None:
        return await serve_artifact(db, store, job_id, artifacts.CONFUSION)
    _, row, title = await db.run(_evaluated, job_id, epoch)
    record = records.epoch_record(row)
    request = ConfusionDraw(matrix=record.confusion, classes=record.classes, epoch=epoch, title=title)
    path = await renderer.draw(request, f"confusion {job_id} {epoch} {row.created_at}", ".png")
    return await send_picture(path, "image/png")


@router.get("/mistakes.png", response_class=FileResponse, responses=PNG)
async def get_mistakes_image(
    job_id: JobIdPath,
    db: ReadDatabaseDep,
    store: StoreDep,
    renderer: RendererDep,
    settings: SettingsDep,
    epoch: Epoch = None,
) -> Response:
    """Up to 64 test images the network got wrong after an epoch, each labelled "true → predicted"."""
    if epoch is None:
        return await serve_artifact(db, store, job_id, artifacts.MISTAKES)
    job, row, title = await db.run(_evaluated, job_id, epoch)
    record = records.epoch_record(row)
    request = MistakesDraw(
        spec=JobSpec.model_validate(job.spec),
        data_dir=str(Path(settings.data_dir).resolve()),
        mistakes=record.mistakes,
        classes=record.classes,
        epoch=epoch,
        title=title,
    )
    path = await renderer.draw(request, f"mistakes {job_id} {epoch} {row.created_at}", ".png")
    return await send_picture(path, "image/png")


@router.get("/weight-change.png", response_class=FileResponse, responses=PNG)
async def get_weight_change_image(job_id: JobIdPath, db: ReadDatabaseDep, store: StoreDep) -> Response:
    """How far each layer's weights have moved, from initialisation and from the epoch before, per epoch."""
    return await serve_artifact(db, store, job_id, artifacts.WEIGHT_CHANGE)
