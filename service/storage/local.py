"""`LocalStore`: a job's files in a folder on this machine; publishing is a rename on one filesystem."""

import shutil
from pathlib import Path
from typing import BinaryIO

from service.storage.base import fsync_replace
from service.storage.keys import checkpoint_key


class LocalStore:
    """A folder with one sub-folder per job: `<root>/<job>/curves.png`, `kernels/…`, `checkpoints/…`.

    Keys are paths relative to the root. Staging lies inside the job's folder, so publishing is a rename
    on one filesystem, done while the transaction holds the job's row.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key

    @property
    def scratch(self) -> Path:
        return self.root

    def staging(self, job_id: int, token: str) -> Path:
        folder = self.root / str(job_id) / ".staging" / token[:8]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def prepare(self, job_id: int, token: str, name: str, source: Path) -> str:
        return str(source)  # staged on the store's own filesystem already: publishing is a rename

    def publish(self, job_id: int, token: str, name: str, pending: str) -> str:
        key = f"{job_id}/{name}"
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(pending).replace(target)
        return key

    def abandon(self, pending: str) -> None:
        Path(pending).unlink(missing_ok=True)

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

    def size(self, key: str) -> int:
        path = self.local_path(key)
        if path is None:
            raise FileNotFoundError(key)
        return path.stat().st_size

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

    def discard_job(self, job_id: int) -> None:
        shutil.rmtree(self.root / str(job_id), ignore_errors=True)  # staging lies inside

    def staged_jobs(self) -> list[int]:
        return sorted(int(p.parent.name) for p in self.root.glob("*/.staging") if p.parent.name.isdigit())
