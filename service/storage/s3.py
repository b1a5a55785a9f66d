"""`S3Store`: a job's files in an S3-compatible bucket (AWS, MinIO, Ceph, moto…), through fsspec's s3fs.

Files are written on this machine first, in a claim's staging folder under SCRATCH_DIR, then uploaded. S3 has no
rename, so a file is published by uploading it under a key no other publish uses (`storage.unique_key`) before
the lease-checked transaction, which then only records that key: a worker that lost its lease uploads under a
key nobody reads, and removes it once the transaction refuses it. Checkpoints go under
`<job>/checkpoints/<name>`, where `name` is unique to the claim, so any host can list and resume from them.
"""

import contextlib
import shutil
from pathlib import Path
from typing import Any, BinaryIO, cast

import s3fs

from service.config import Settings
from service.storage.keys import checkpoint_key, unique_key

# Reads fetch the object in ranges this large: one request for a picture, four for weights.pt, eleven for a 684 MB
# checkpoint, and no more than this held in memory per open file. Smaller ranges mean more requests, each with its
# own latency (and on some S3-compatible servers, its own pass over the whole object).
BLOCK_BYTES = 64 * 2**20


class S3Store:
    """`s3://bucket/prefix`: keys are `<job>/…` below the prefix; staging is a local folder per claim."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.root = url.removeprefix("s3://").strip("/")
        if not self.root:
            raise ValueError(f"ARTIFACT_URL {url!r} names no bucket: give s3://bucket or s3://bucket/prefix")
        self.scratch = settings.scratch_dir
        secret = settings.aws_secret_access_key.get_secret_value()
        options: dict[str, Any] = {
            "key": settings.aws_access_key_id or None,
            "secret": secret or None,
            "endpoint_url": settings.aws_endpoint_url or None,
            "client_kwargs": {"region_name": settings.aws_default_region} if settings.aws_default_region else {},
            "default_block_size": BLOCK_BYTES,
            # Other hosts add and remove a job's checkpoints: every listing must ask the server, not a cache.
            "use_listings_cache": False,
            "skip_instance_cache": True,
        }
        self.fs = s3fs.S3FileSystem(**options)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def staging(self, job_id: int, token: str) -> Path:
        folder = self.scratch / "staging" / str(job_id) / token[:8]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def prepare(self, job_id: int, token: str, name: str, source: Path) -> str:
        key = unique_key(job_id, token, name)
        self.fs.put_file(str(source), self._path(key))
        source.unlink(missing_ok=True)
        return key

    def publish(self, job_id: int, token: str, name: str, pending: str) -> str:
        return pending  # uploaded already; the transaction recording this key is what makes it current

    def abandon(self, pending: str) -> None:
        self.delete(pending)

    def put_checkpoint(self, job_id: int, name: str, source: Path) -> str:
        key = checkpoint_key(job_id, name)
        self.fs.put_file(str(source), self._path(key))  # an object appears whole or not at all
        source.unlink(missing_ok=True)
        return key

    def local_path(self, key: str) -> Path | None:
        return None  # nothing of the bucket is on this machine's disk: reads stream through `open`

    def open(self, key: str) -> BinaryIO:
        return cast(BinaryIO, self.fs.open(self._path(key), "rb"))

    def size(self, key: str) -> int:
        return int(self.fs.size(self._path(key)))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def discard_staging(self, job_id: int, token: str | None = None) -> None:
        staging = self.scratch / "staging" / str(job_id)
        shutil.rmtree(staging / token[:8] if token else staging, ignore_errors=True)

    def _remove_tree(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(key), recursive=True)

    def discard_checkpoints(self, job_id: int) -> None:
        self._remove_tree(f"{job_id}/checkpoints")

    def checkpoint_names(self, job_id: int) -> list[str]:
        try:
            paths = self.fs.ls(self._path(f"{job_id}/checkpoints"), detail=False)
        except FileNotFoundError:
            return []
        return sorted(name for p in paths if (name := str(p).rsplit("/", 1)[-1]).endswith(".pt"))

    def discard_job(self, job_id: int) -> None:
        self._remove_tree(str(job_id))
        self.discard_staging(job_id)

    def staged_jobs(self) -> list[int]:
        folder = self.scratch / "staging"
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []
