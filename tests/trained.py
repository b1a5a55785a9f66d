"""A network that has learned the synthetic classes, trained once for the whole session and shared by the modules that
look at one (test_inside.py, test_predict.py), even when pytest-xdist runs them in different processes.

The first module to ask trains it (a job queued through the API, `python -m worker --burst`) while holding a file
lock, so that another process that asks meanwhile waits for it instead of training it again. Each module then gets a
copy of its own: the SQLite database copied, the artifacts hard-linked (the store replaces a file, it never writes
into one), so that what a module adds or deletes stays in its copy.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from filelock import FileLock

from bench.processes import start_worker
from service.api.app import create_app
from service.config import Settings
from tests.helpers import copy_sqlite, make_settings, sqlite_database

# One epoch on the quick demo's 1,280 images learns the synthetic classes to ~90 %; 200 test images are enough for a
# filter's nine and few enough to check by brute force. At 128 px, not the quick demo's 64: there conv5's maps are 3×3
# and every position sees the whole image, and Grad-CAM put ~25 % of its mass in the pattern's quadrant, no better
# than chance; at 128 px (7×7) it puts ~57 % there.
SPEC = {
    "dataset": "synthetic",
    "epochs": 1,
    "image_size": 128,
    "batch_size": 32,
    "train_samples": 1280,
    "test_samples": 200,
    "device": "cpu",
}
NAME = "learned-synthetic"


@dataclass(frozen=True)
class Copy:
    """A module's own copy: settings over its database and artifacts, and the trained job's id there."""

    settings: Settings
    job_id: int


def learned(tmp_path_factory: pytest.TempPathFactory, folder_name: str) -> Copy:
    """A copy of the session's trained job of SPEC in a new folder, `folder_name`; trained first if need be."""
    original = _trained(_session_folder(tmp_path_factory))
    folder = tmp_path_factory.mktemp(folder_name)
    url = copy_sqlite(original.folder / "jobs.db", folder)
    shutil.copytree(original.folder / "artifacts", folder / "artifacts", copy_function=os.link)
    return Copy(make_settings(folder, url), original.job_id)


@dataclass(frozen=True)
class _Original:
    folder: Path
    job_id: int


def _session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every process of this session sees: under xdist, the parent of each process's own base folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _trained(root: Path) -> _Original:
    folder, done = root / NAME, root / f"{NAME}.job"
    with FileLock(root / f"{NAME}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a process that failed half-way left
            folder.mkdir()
            settings = make_settings(folder, sqlite_database(folder))
            with TestClient(create_app(settings)) as client:
                job_id = client.post("/jobs", json=SPEC).json()["id"]
                worker = start_worker(settings, folder / "worker.log", "--burst")
                assert worker.wait(timeout=600) == 0, (folder / "worker.log").read_text()
                job = client.get(f"/jobs/{job_id}").json()
                assert job["status"] == "succeeded", job
            done.write_text(str(job_id))
        return _Original(folder, int(done.read_text()))
