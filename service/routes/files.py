"""A job's files: the learning curves, the kernel grids, and every artifact by name."""

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response, StreamingResponse

from service import artifacts, queries
from service.artifacts import Layer, Stage
from service.deps import ReadSessionDep, StoreDep
from service.errors import NotFound
from service.routes.presenter import PNG
from service.schemas import ArtifactList, ArtifactOut, KernelImageOut, KernelList

JobId = Annotated[int, "job id"]
# What the worker writes: curves and kernel grids, metrics.csv, weights.pt.
ARTIFACT_TYPES = sorted(set(artifacts.CONTENT_TYPES.values()))

router = APIRouter()


def serve_artifact(session: ReadSessionDep, store: StoreDep, job_id: int, name: str) -> Response:
    """A file the database says the job has, read through the key it recorded (never a path from the URL)."""
    queries.get_job(session, job_id)
    row = queries.artifact_row(session, job_id, name)
    filename = PurePosixPath(row.name).name
    path = store.local_path(row.key)
    if path is not None:
        return FileResponse(path, media_type=row.content_type, filename=filename)
    try:
        stream = store.open(row.key)
    except FileNotFoundError:
        raise NotFound(f"job {job_id} has no artifact {name!r} in the store") from None
    disposition = f'attachment; filename="{filename}"'
    return StreamingResponse(stream, media_type=row.content_type, headers={"Content-Disposition": disposition})


@router.get("/jobs/{job_id}/curves.png", response_class=FileResponse, responses=PNG)
def get_curves(job_id: JobId, session: ReadSessionDep, store: StoreDep) -> Response:
    """Training and test loss, and test accuracy, per epoch; redrawn after every epoch."""
    return serve_artifact(session, store, job_id, artifacts.CURVES)


@router.get("/jobs/{job_id}/kernels", response_model=KernelList)
def list_kernels(job_id: JobId, session: ReadSessionDep) -> KernelList:
    """The kernel images drawn so far (conv1 and conv2; initial, trained, diff)."""
    queries.get_job(session, job_id)
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
    return KernelList(job_id=job_id, kernels=kernels)


@router.get("/jobs/{job_id}/kernels/{layer}/{stage}.png", response_class=FileResponse, responses=PNG)
def get_kernel_image(job_id: JobId, layer: Layer, stage: Stage, session: ReadSessionDep, store: StoreDep) -> Response:
    """One kernel grid (conv1's 64 RGB kernels, or one conv2 filter's 64 slices): before, after, or the change."""
    return serve_artifact(session, store, job_id, artifacts.kernel_image(layer, stage))


@router.get("/jobs/{job_id}/artifacts", response_model=ArtifactList)
def list_artifacts(job_id: JobId, session: ReadSessionDep) -> ArtifactList:
    """Every file the job has written: name, size, content type and download URL."""
    queries.get_job(session, job_id)
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
    return ArtifactList(job_id=job_id, artifacts=items)


@router.get(
    "/jobs/{job_id}/artifacts/{name:path}",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in ARTIFACT_TYPES}, "description": "The file, in its own content type"}},
)
def get_artifact(job_id: JobId, name: str, session: ReadSessionDep, store: StoreDep) -> Response:
    """Download one artifact by the name `GET /jobs/{id}/artifacts` lists."""
    return serve_artifact(session, store, job_id, name)
