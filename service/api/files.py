"""Serving a file a job published: from this machine's disk, or streamed from the bucket; used by every route that
answers with one of a job's files (curves, kernels, confusion, mistakes, weight change, any artifact by name)."""

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import queries
from service.api.deps import Database
from service.errors import NotFound
from service.storage import ArtifactStore

# A file streamed from a bucket goes out in pieces this big.
CHUNK_BYTES = 1 << 20


def _stored(session: Session, store: ArtifactStore, job_id: int, name: str) -> tuple[str, str, int, Path | None]:
    """Where the job's artifact `name` is kept: its key, content type, size, and its path when on this machine."""
    job = queries.job_row(session, job_id)  # NotFound for the job first
    row = queries.artifact_row(session, job_id, name, job.status)
    return row.key, row.content_type, row.size, store.local_path(row.key)


async def serve_artifact(db: Database, store: ArtifactStore, job_id: int, name: str) -> Response:
    """A file the database says the job has, read through the key it recorded (never a path from the URL)."""
    key, content_type, size, path = await db.run(_stored, store, job_id, name)
    filename = PurePosixPath(name).name
    # Pictures open in the browser; weights, CSV and the rest download.
    disposition = "inline" if content_type.startswith("image/") else "attachment"
    headers = {"Content-Disposition": f'{disposition}; filename="{filename}"'}
    if path is not None:
        try:
            return await send_file(path, content_type, headers)
        except FileNotFoundError:
            raise NotFound(f"job {job_id} has no artifact {name!r} any more") from None
    # Not on this machine (a bucket): streamed through the API rather than redirected to a presigned URL, so that
    # curl needs no -L, the bucket need not be reachable from clients, and API_TOKEN still guards every file.
    try:
        stream = await run_in_threadpool(store.open, key)
    except FileNotFoundError:
        raise NotFound(f"job {job_id} has no artifact {name!r} in the store") from None
    # The size recorded with the key is the stored object's (keys on a bucket never change their bytes).
    headers["Content-Length"] = str(size)
    return StreamingResponse(_chunks(stream), media_type=content_type, headers=headers)


async def send_file(path: Path, media_type: str, headers: dict[str, str] | None = None) -> Response:
    """A file on this machine, opened before the response starts; FileNotFoundError if it is gone.

    Not FileResponse, which opens the path only once the headers are sent: a file deleted (a job deleted, a cache
    pruned) in between would be a 500, and one replaced by a shorter one a body cut short of its Content-Length. An
    open file keeps its bytes whatever happens to its name, and its size is the open file's."""
    stream = await run_in_threadpool(path.open, "rb")
    size = os.fstat(stream.fileno()).st_size
    return StreamingResponse(
        _chunks(stream), media_type=media_type, headers={**(headers or {}), "Content-Length": str(size)}
    )


async def send_picture(path: Path, media_type: str) -> Response:
    """A picture just drawn into the cache; NotFound (never a 500) if it was pruned before it could be opened."""
    try:
        return await send_file(path, media_type)
    except FileNotFoundError:
        raise NotFound("the picture was dropped from the cache before it could be sent; ask again") from None


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    """A file in pieces; StreamingResponse reads a plain iterator in a worker thread."""
    with stream:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
