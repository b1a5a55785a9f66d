"""One job through a real worker, claim → succeeded, timed to show its cold start and what is not training.

The job reads CIFAR-10-format files of the bench's whole data set, as a real job does, then trains for a few
epochs: on all of it (by default on a GPU, where 3 epochs of 50,000 + 10,000 images take seconds), or on a few
batches an epoch and one batch of test images (`train_samples`, `test_samples`), so that the steps stay few.
The worker runs in a fresh process, as a real one does: cuDNN's chosen algorithms, oneDNN's primitives and the
memory cached by the bench's own timing would otherwise make the job's first epoch warm. It is given, through
its `run_factory`, a `JobRun` subclass that notes the time at each hook; nothing else of it is changed.
"""

import itertools
import multiprocessing
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.job_timing import JobTiming
from bench.measure import sync
from bench.processes import migrate
from service import jobs, queries
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status
from service.spec import JobSpec
from worker.checkpoint import Checkpoint
from worker.data import FOLDER_NAME, TRAIN_BATCHES, Dataset
from worker.hooks import EpochEnd, StartInfo
from worker.loop import Worker
from worker.runner import JobRun
from worker.tuning import Tuning


def bench_job(
    epochs: int, steps: int | None, batch_size: int, image_size: int, device: str, precision: str, seed: int
) -> JobSpec:
    """The timed job: `steps` training steps an epoch and one batch of test images, or (`steps` None) all of both."""
    return JobSpec.model_validate(
        {
            "dataset": "cifar10",
            "epochs": epochs,
            "batch_size": batch_size,
            "image_size": image_size,
            "train_samples": None if steps is None else steps * batch_size,
            "test_samples": None if steps is None else batch_size,
            "device": device,
            "precision": precision,
            "seed": seed,
        }
    )


class TimedJobRun(JobRun):
    """The worker's JobRun with a clock at each hook; `marks` maps an event to time.perf_counter()."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.marks = {"claimed": time.perf_counter()}  # the claim's transaction has just committed
        self.device = torch.device("cpu")
        self.steps_per_epoch = 1
        self.epoch_seconds: list[float] = []
        super().__init__(*args, **kwargs)

    def on_start(self, info: StartInfo) -> None:
        self.marks["model built, data on device"] = time.perf_counter()
        self.device, self.steps_per_epoch = torch.device(info.device), info.steps_per_epoch
        super().on_start(info)  # records the start; the initial pictures may be drawn in the background
        self.marks["first step begins"] = time.perf_counter()

    def on_step(self, steps_done: int, checkpoint: Callable[[], Checkpoint] | None = None) -> None:
        first = "first step done" not in self.marks
        epoch, step = divmod(steps_done, self.steps_per_epoch)
        if first or step == 0:
            # Synchronised where a mark is taken (only there: a job's steps queue up on a GPU), so that the steps
            # queued before it count as training and not as what follows.
            sync(self.device)
            now = time.perf_counter()
            if first:
                self.marks["first step done"] = now
            if step == 0:
                self.marks[f"epoch {epoch} trained"] = now
        super().on_step(steps_done, checkpoint)

    def on_epoch_end(self, end: EpochEnd) -> None:
        epoch = end.result.epoch
        self.marks[f"epoch {epoch} evaluated"] = time.perf_counter()
        self.epoch_seconds.append(end.result.seconds)
        super().on_epoch_end(end)  # records the epoch; its pictures may be drawn in the background
        self.marks[f"epoch {epoch} recorded"] = time.perf_counter()

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


def engine_tuning(tuning: Tuning) -> str:
    """`tuning` as ENGINE_TUNING spells it: empty for the defaults."""
    return "" if tuning == Tuning() else tuning.describe()


def _work(settings: Settings) -> tuple[float, dict[str, float], list[float]]:
    """In a fresh process: a burst worker over `settings`' queue. When it started, its one run's marks, and its
    epochs' seconds."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # as `python -m worker` does
    started = time.perf_counter()
    runs: list[TimedJobRun] = []

    def make_run(*args: Any) -> TimedJobRun:
        runs.append(TimedJobRun(*args))
        return runs[-1]

    Worker(settings, run_factory=make_run).run(burst=True)
    if len(runs) != 1:
        raise RuntimeError(f"the bench's worker ran {len(runs)} jobs, not 1")
    return started, runs[0].marks, runs[0].epoch_seconds


def time_job(data: Dataset, spec: JobSpec, say: Callable[[str], None], tuning: Tuning | None = None) -> JobTiming:
    """Write `data` as CIFAR-10 files, queue `spec` (dataset cifar10) and run a burst worker with `tuning` over it,
    in a process of its own."""
    tuning = tuning or Tuning()
    with tempfile.TemporaryDirectory(prefix="alexnet-jobs-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(
            database_url=f"sqlite:///{root / 'jobs.db'}",
            artifact_dir=root / "artifacts",
            scratch_dir=root / "scratch",
            cache_dir=root / "cache",
            data_dir=root / "data",
            engine_tuning=engine_tuning(tuning),
        )
        say(f"writing {len(data.train_labels):,} + {len(data.test_labels):,} images as CIFAR-10 files")
        write_cifar_files(data, settings.data_dir)
        migrate(settings.database_url)
        sessions = make_sessionmaker(make_engine(settings.database_url))
        with transaction(sessions) as session:
            job_id = jobs.create_job(session, spec).id

        say(f"job {job_id}: a burst worker in a fresh process claims and runs it")
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()  # what the bench's own timing left cached is not the job's to have
        # spawn, not fork: a forked child would inherit this process's CUDA state, which CUDA does not allow.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            started, marks, epoch_seconds = pool.submit(_work, settings).result()
        with transaction(sessions) as session:
            job = queries.get_job(session, job_id)
            status, error = job.status, job.error
            assert job.started_at is not None and job.finished_at is not None
            row_seconds = (job.finished_at - job.started_at).total_seconds()
    if status != "succeeded":
        raise RuntimeError(f"the bench job ended {status}: {error}")
    for epoch, seconds in enumerate(epoch_seconds, 1):
        say(f"epoch {epoch}: {seconds:.2f} s")
    last_trained = marks[f"epoch {spec.epochs} trained"]
    return JobTiming(
        phases=[(f"{a} → {b}", marks[b] - marks[a]) for a, b in itertools.pairwise(marks)],
        worker_start_to_claim=marks["claimed"] - started,
        claim_to_first_step=marks["first step begins"] - marks["claimed"],
        claim_to_first_step_done=marks["first step done"] - marks["claimed"],
        epoch_seconds=epoch_seconds,
        last_step_to_succeeded=marks["succeeded"] - last_trained,
        evaluation=marks[f"epoch {spec.epochs} evaluated"] - last_trained,
        claim_to_succeeded=marks["succeeded"] - marks["claimed"],
        row_seconds=row_seconds,
        status=status,
        spec=spec,
        files=(len(data.train_labels), len(data.test_labels)),
        tuning=tuning,
    )
