"""Where a job's files live: an `ArtifactStore` (a local folder today; an object store can implement the same).

Publishing is fenced. A file is first written into the claim's own staging folder; `publish` then makes it
the job's current file inside the transaction that checks the claim's lease and records the artifact's row,
so a worker that lost its lease never replaces what its successor published. The row keeps the key the
store returned, and reads go through that key, never through a path built from a URL.
"""

import os
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol


class ArtifactStore(Protocol):
    """What the worker writes through and the API reads through."""

    def staging(self, job_id: int, token: str) -> Path:
        """A local folder of this claim's own, for files being written before they are published."""
        ...

    def publish(self, job_id: int, token: str, name: str, source: Path) -> str:
        """Make the finished file `source` the job's artifact `name`; returns the key to record.

        Call it inside the lease-checked transaction that records the row.
        """
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


def checkpoint_key(job_id: int, name: str) -> str:
    """Where a job's checkpoint `name` is kept."""
    return f"{job_id}/checkpoints/{name}"


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


class LocalStore:
    """A folder with one sub-folder per job: `<root>/<job>/curves.png`, `kernels/…`, `checkpoints/…`.

    Keys are paths relative to the root. Staging lies inside the job's folder, so publishing is a rename
    on one filesystem, done while the transaction holds the job's row.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key

    def staging(self, job_id: int, token: str) -> Path:
        folder = self.root / str(job_id) / ".staging" / token[:8]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def publish(self, job_id: int, token: str, name: str, source: Path) -> str:
        key = f"{job_id}/{name}"
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        return key

    def put_checkpoint(self, job_id: int, name: str, source: Path) -> str:
        key = checkpoint_key(job_id, name)
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fsync_replace(source, target)
        return key

    def local_path(self, key: str) -> Path | None:
        root = self.root.resolve()
        path = self._path(key).resolve()
        # A symlink or `..` that leads out of the store is not one of its files.
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def open(self, key: str) -> BinaryIO:
        path = self.local_path(key)
        if path is None:
            raise FileNotFoundError(key)
        return path.open("rb")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def discard_staging(self, job_id: int, token: str | None = None) -> None:
        staging = self.root / str(job_id) / ".staging"
        shutil.rmtree(staging / token[:8] if token else staging, ignore_errors=True)

    def discard_checkpoints(self, job_id: int) -> None:
        shutil.rmtree(self.root / str(job_id) / "checkpoints", ignore_errors=True)

    def checkpoint_names(self, job_id: int) -> list[str]:
        folder = self.root / str(job_id) / "checkpoints"
        return sorted(p.name for p in folder.glob("*.pt")) if folder.is_dir() else []


def make_store(artifact_dir: Path) -> ArtifactStore:
    """The store the settings name (today always a local folder)."""
    return LocalStore(artifact_dir)
