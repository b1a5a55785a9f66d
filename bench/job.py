"""One short job through the real worker, claim → succeeded, timed to show what is not training.

The data is full size on purpose: the job reads CIFAR-10-format files of 50,000 + 10,000 images, as a real
job does, and then trains on a small seeded subset (`train_samples`, `test_samples`), so the time before
the first step includes reading every image while the steps themselves stay few. The worker is given, through
its `run_factory`, a `JobRun` subclass that notes the time at each hook; nothing else of it is changed.
"""

import itertools
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.processes import migrate
from service import jobs, queries
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status
from service.spec import JobSpec
from worker.data import FOLDER_NAME, TRAIN_BATCHES, Dataset
from worker.hooks import EpochEnd, StartInfo
from worker.loop import Worker
from worker.runner import JobRun


@dataclass(frozen=True)
class JobTiming:
    """Seconds between the hooks of one job, in order, plus the job row's own claim → finish."""

    phases: list[tuple[str, float]]
    claim_to_first_step: float
    claim_to_first_step_done: float
    last_step_to_succeeded: float
    evaluation: float
    row_seconds: float
    status: str
    spec: JobSpec


class TimedJobRun(JobRun):
    """The worker's JobRun with a clock at each hook; `marks` maps an event to time.perf_counter()."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.marks = {"claimed": time.perf_counter()}  # the claim's transaction has just committed
        self.device = torch.device("cpu")
        super().__init__(*args, **kwargs)

    def on_start(self, info: StartInfo) -> None:
        self.marks["model built, data on device"] = time.perf_counter()
        self.device = torch.device(info.device)
        super().on_start(info)  # records the start; the initial pictures may be drawn in the background
        self.marks["first step begins"] = time.perf_counter()

    def on_step(self, steps_done: int) -> None:
        # Synchronised, unlike in a job, so that a GPU's queued steps count as steps and not as overhead.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.marks.setdefault("first step done", time.perf_counter())
        self.marks["last step done"] = time.perf_counter()
        super().on_step(steps_done)

    def on_epoch_end(self, end: EpochEnd) -> None:
        self.marks["evaluated"] = time.perf_counter()
        super().on_epoch_end(end)  # records the epoch; its pictures may be drawn in the background
        self.marks["epoch hook returned"] = time.perf_counter()

    def load_data(self) -> Dataset:
        data = super().load_data()
        self.marks["data loaded"] = time.perf_counter()
        return data

    def run(self) -> Status | None:
        status = super().run()
        self.marks["succeeded"] = time.perf_counter()
        return status


def write_cifar_files(data: Dataset, root: Path) -> None:
    """`data` as the official CIFAR-10 python batches (five train files of 10,000, a test file, the meta)."""
    folder = root / FOLDER_NAME
    folder.mkdir(parents=True, exist_ok=True)
    parts = np.array_split(np.arange(len(data.train_labels)), len(TRAIN_BATCHES))
    files = [
        (name, data.train_images[idx], data.train_labels[idx]) for name, idx in zip(TRAIN_BATCHES, parts, strict=True)
    ]
    files.append(("test_batch", data.test_images, data.test_labels))
    for name, images, labels in files:
        # Protocol 2 and bytes keys, like the Python 2 originals; one row of 3,072 bytes per image.
        batch = {b"data": images.reshape(len(images), -1), b"labels": labels.tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in data.classes]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def time_job(data: Dataset, spec: JobSpec, say: Callable[[str], None]) -> JobTiming:
    """Write `data` as CIFAR-10 files, queue `spec` (dataset cifar10) and run a burst worker over it."""
    with tempfile.TemporaryDirectory(prefix="alexnet-jobs-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(
            database_url=f"sqlite:///{root / 'jobs.db'}", artifact_dir=root / "artifacts", data_dir=root / "data"
        )
        say(f"writing {len(data.train_labels):,} + {len(data.test_labels):,} images as CIFAR-10 files")
        write_cifar_files(data, settings.data_dir)
        migrate(settings.database_url)
        sessions = make_sessionmaker(make_engine(settings.database_url))
        with transaction(sessions) as session:
            job_id = jobs.create_job(session, spec).id

        runs: list[TimedJobRun] = []

        def make_run(*args: Any) -> TimedJobRun:
            runs.append(TimedJobRun(*args))
            return runs[-1]

        say(f"job {job_id}: a burst worker claims and runs it")
        Worker(settings, run_factory=make_run).run(burst=True)
        with transaction(sessions) as session:
            job = queries.get_job(session, job_id)
            status, error = job.status, job.error
            assert job.started_at is not None and job.finished_at is not None
            row_seconds = (job.finished_at - job.started_at).total_seconds()
    if status != "succeeded" or len(runs) != 1:
        raise RuntimeError(f"the bench job ended {status}: {error}")
    marks = runs[0].marks
    names = list(marks)
    phases = [(f"{a} → {b}", marks[b] - marks[a]) for a, b in itertools.pairwise(names)]
    return JobTiming(
        phases=phases,
        claim_to_first_step=marks["first step begins"] - marks["claimed"],
        claim_to_first_step_done=marks["first step done"] - marks["claimed"],
        last_step_to_succeeded=marks["succeeded"] - marks["last step done"],
        evaluation=marks["evaluated"] - marks["last step done"],
        row_seconds=row_seconds,
        status=status,
        spec=spec,
    )
