"""A job's files: the learning curves, the kernel grids, and every artifact by name."""

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import artifacts, queries
from service.api.deps import Database, JobIdPath, ReadDatabaseDep, StoreDep
from service.api.presenter import PNG, json_response
from service.api.schemas import ArtifactList, ArtifactOut
from service.errors import NotFound
from service.storage import ArtifactStore

# What the worker writes: curves and kernel grids, metrics.csv, weights.pt.
ARTIFACT_TYPES = sorted(set(artifacts.CONTENT_TYPES.values()))

router = APIRouter(prefix="/jobs/{job_id}", tags=["files"])


async def serve_artifact(db: Database, store: ArtifactStore, job_id: int, name: str) -> Response:
    """A file the database says the job has, read through the key it recorded (never a path from the URL)."""

    def find(session: Session) -> tuple[str, str, int, Path | None]:
        queries.job_row(session, job_id)
        row = queries.artifact_row(session, job_id, name)
        return row.key, row.content_type, row.size, store.local_path(row.key)

    key, content_type, size, path = await db.run(find)
    filename = PurePosixPath(name).name
    # Pictures open in the browser; weights, CSV and the rest download.
    disposition = "inline" if content_type.startswith("image/") else "attachment"
    if path is not None:
        return FileResponse(path, media_type=content_type, filename=filename, content_disposition_type=disposition)
    # Not on this machine (a bucket): streamed through the API rather than redirected to a presigned URL, so that
    # curl needs no -L, the bucket need not be reachable from clients, and API_TOKEN still guards every file.
    try:
        stream = await run_in_threadpool(store.open, key)
    except FileNotFoundError:
        raise NotFound(f"job {job_id} has no artifact {name!r} in the store") from None
    # The size recorded with the key is the stored object's (keys on a bucket never change their bytes).
    headers = {"Content-Disposition": f'{disposition}; filename="{filename}"', "Content-Length": str(size)}
    return StreamingResponse(_chunks(stream), media_type=content_type, headers=headers)


def _chunks(stream: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    """A file in 1 MiB pieces; StreamingResponse reads a plain iterator in a worker thread."""
    with stream:
        while chunk := stream.read(size):
            yield chunk


@router.get("/curves.png", response_class=FileResponse, responses=PNG)
async def get_curves(job_id: JobIdPath, db: ReadDatabaseDep, store: StoreDep) -> Response:
    """Training and test loss, and test accuracy, per epoch; redrawn after every epoch."""
    return await serve_artifact(db, store, job_id, artifacts.CURVES)


@router.get("/artifacts", response_model=ArtifactList)
async def list_artifacts(job_id: JobIdPath, db: ReadDatabaseDep) -> Response:
    """Every file the job has written: name, size, content type and download URL."""

    def read(session: Session) -> ArtifactList:
        queries.job_row(session, job_id)
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

    return json_response(await db.run(read))


@router.get(
    "/artifacts/{name:path}",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in ARTIFACT_TYPES}, "description": "The file, in its own content type"}},
)
async def get_artifact(job_id: JobIdPath, name: str, db: ReadDatabaseDep, store: StoreDep) -> Response:
    """Download one artifact by the name `GET /jobs/{id}/artifacts` lists."""
    return await serve_artifact(db, store, job_id, name)
