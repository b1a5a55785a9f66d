"""What every store offers (`ArtifactStore`), and the file helpers both stores and their readers use."""

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO, Protocol

# How many fetched copies of stored files (`local_copy`) are kept on this machine; each is tens of kB.
LOCAL_COPIES = 2000


class ArtifactStore(Protocol):
    """What the worker writes through and the API reads through."""

    @property
    def scratch(self) -> Path:
        """The local folder files are written into before they are published: its volume must have room."""
        ...

    def staging(self, job_id: int, token: str) -> Path:
        """A local folder of this claim's own, for files being written before they are published."""
        ...

    def prepare(self, job_id: int, token: str, name: str, source: Path) -> str:
        """Take the finished file `source` as far as it goes without becoming current (on S3: the upload);
        returns what to hand to `publish` or `abandon`. Outside any transaction: it may take a while."""
        ...

    def publish(self, job_id: int, token: str, name: str, pending: str) -> str:
        """Make the prepared file the job's artifact `name`; returns the key to record.

        Call it inside the lease-checked transaction that records the row; it takes no time on either store.
        """
        ...

    def abandon(self, pending: str) -> None:
        """Drop a prepared file that never became current (its claim lost the lease)."""
        ...

    def put_checkpoint(self, job_id: int, name: str, source: Path) -> str:
        """Store a checkpoint under its claim-unique `name`; returns its key."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file behind `key` on this machine's disk, if it is there (and inside the store)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Read the file behind `key`; FileNotFoundError if there is none."""
        ...

    def size(self, key: str) -> int:
        """The size in bytes of the file behind `key`; FileNotFoundError if there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove one file; a missing one is fine."""
        ...

    def discard_staging(self, job_id: int, token: str | None = None) -> None:
        """Remove one claim's staging folder, or (token None) every claim's."""
        ...

    def discard_checkpoints(self, job_id: int) -> None:
        """Remove all of a job's checkpoints."""
        ...

    def checkpoint_names(self, job_id: int) -> list[str]:
        """The names of the job's stored checkpoints, whether or not the job's row points at them."""
        ...

    def discard_job(self, job_id: int) -> None:
        """Remove every file of the job: artifacts, checkpoints, and what this machine staged for it."""
        ...

    def staged_jobs(self) -> list[int]:
        """The jobs this machine has staging folders for."""
        ...


def local_copy(store: ArtifactStore, key: str, folder: Path, keep: int = LOCAL_COPIES) -> Path:
    """The file behind `key` on this machine: the store's own, or a copy fetched once into `folder`.

    A copy is kept by key, which is sound because a store without local files never reuses a key for other
    bytes (`unique_key`). The oldest copies beyond `keep` are dropped.
    """
    path = store.local_path(key)
    if path is not None:
        return path
    copy = folder / hashlib.sha256(key.encode()).hexdigest()[:32]
    if copy.is_file():
        copy.touch()  # recently used: pruned last
        return copy
    folder.mkdir(parents=True, exist_ok=True)
    tmp = copy.with_name(f".{copy.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        with store.open(key) as source, open(tmp, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        os.replace(tmp, copy)  # whole or not at all, for a concurrent reader of the same key
    finally:
        tmp.unlink(missing_ok=True)
    # Whole copies only: a name starting with "." is another fetch's file in progress.
    copies = [p for p in folder.iterdir() if not p.name.startswith(".")]
    for old in sorted(copies, key=_mtime)[:-keep]:
        old.unlink(missing_ok=True)
    return copy


def _mtime(path: Path) -> float:
    """When `path` was last used; 0 for one another thread removed meanwhile (it is gone either way)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def fsync_replace(tmp: Path, path: Path) -> None:
    """Make `tmp` durable and move it onto `path` in one step, so readers see the old file or the new one."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash only once the folder is synced
    finally:
        os.close(dir_fd)
