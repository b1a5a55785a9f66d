"""A job's files: the learning curves, and every artifact by name."""

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import artifacts, queries
from service.api.deps import JobIdPath, ReadDatabaseDep, StoreDep
from service.api.files import serve_artifact
from service.api.presenter import PNG
from service.api.resume_schemas import CheckpointOut
from service.api.schemas import ArtifactList, ArtifactOut
from service.storage import ArtifactStore, checkpoint_key

# What the worker writes: curves and kernel grids, metrics.csv, weights.pt.
ARTIFACT_TYPES = sorted(set(artifacts.CONTENT_TYPES.values()))

router = APIRouter(prefix="/jobs/{job_id}", tags=["files"])


def artifact_list(session: Session, job_id: int) -> tuple[ArtifactList, str | None]:
    """Every file the job has, with its download URL, and the name of its checkpoint; NotFound for an unknown job."""
    checkpoint = queries.job_row(session, job_id).checkpoint
    items = [
        ArtifactOut(
            name=r.name,
            size=r.size,
            content_type=r.content_type,
            updated_at=r.updated_at,
            url=f"/jobs/{job_id}/artifacts/{r.name}",
        )
        for r in queries.artifact_rows(session, job_id)
    ]
    return ArtifactList(job_id=job_id, artifacts=items), checkpoint


def checkpoint_out(store: ArtifactStore, job_id: int, name: str) -> CheckpointOut | None:
    """The job's checkpoint `name` as listed; None when its file is gone (a resume would then start over)."""
    position = artifacts.checkpoint_position(name)
    try:
        size = store.size(checkpoint_key(job_id, name))
    except FileNotFoundError:
        return None
    if position is None:
        return None
    epoch, step = position
    return CheckpointOut(name=name, size=size, epoch=epoch - 1 if step else epoch, step=step)


@router.get("/curves.png", response_class=FileResponse, responses=PNG)
async def get_curves(job_id: JobIdPath, db: ReadDatabaseDep, store: StoreDep) -> Response:
    """Training and test loss, and test accuracy, per epoch; redrawn after every epoch."""
    return await serve_artifact(db, store, job_id, artifacts.CURVES)


@router.get("/artifacts")
async def list_artifacts(job_id: JobIdPath, db: ReadDatabaseDep, store: StoreDep) -> ArtifactList:
    """Every file the job has written: name, size, content type and download URL; and the checkpoint it keeps (its
    size and epoch), which a resume or a continue goes on from."""
    listing, checkpoint = await db.run(artifact_list, job_id)
    if checkpoint is not None:
        listing.checkpoint = await run_in_threadpool(checkpoint_out, store, job_id, checkpoint)
    return listing


@router.get(
    "/artifacts/{name:path}",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in ARTIFACT_TYPES}, "description": "The file, in its own content type"}},
)
async def get_artifact(job_id: JobIdPath, name: str, db: ReadDatabaseDep, store: StoreDep) -> Response:
    """Download one artifact by the name `GET /jobs/{id}/artifacts` lists."""
    return await serve_artifact(db, store, job_id, name)
