"""Runs one claimed job: loads its data, trains, and publishes metrics, checkpoints and pictures.

Every write is fenced by the claim's lease token. A file is first written to this claim's own folder
under the job's `.staging/`, then renamed into place inside the same transaction that checks the lease
and records it, so a worker that lost its job never replaces a file the new owner wrote.

Metrics are recorded as each epoch ends; checkpoints and pictures are written by one background thread
(`Publisher`) while the next epoch trains, so the GPU does not wait for the disk or for matplotlib.
"""

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.orm import Session, sessionmaker

from service import jobs
from service.config import Settings
from service.db import transaction
from worker import checkpoint, plots
from worker.data import DataError, load_dataset
from worker.train import (
    EpochEnd,
    Kernels,
    StartInfo,
    Stopped,
    TrainConfig,
    TrainingError,
    check_precision,
    fit,
    resolve_device,
)

log = logging.getLogger("worker")


@dataclass
class Progress:
    """Written by the training thread, read by the heartbeat thread (plain ints and floats: no locking)."""

    steps_done: int = 0
    steps_total: int | None = None
    steps_at_start: int = 0
    started: float = 0.0

    def eta_seconds(self) -> float | None:
        """Remaining time at the pace of this attempt so far."""
        done_here = self.steps_done - self.steps_at_start
        if not self.steps_total or done_here <= 0:
            return None
        per_step = (time.monotonic() - self.started) / done_here
        return round(per_step * (self.steps_total - self.steps_done), 1)


class Publisher:
    """One background thread for a job's file work, in submission order, at most one batch in flight
    (so at most one snapshot of the weights waits in memory). Its errors surface in the training thread."""

    def __init__(self, job_id: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"publish-{job_id}")
        self.pending: Future[None] | None = None

    def submit(self, work: Callable[[], None]) -> None:
        self.wait()
        self.pending = self.pool.submit(work)

    def wait(self) -> None:
        """Block until the submitted work is done; re-raise what it raised."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def check(self) -> None:
        """Cheap, for every step: re-raise a failure of finished work without waiting for unfinished work."""
        if self.pending is not None and self.pending.done():
            self.wait()

    def close(self) -> None:
        """Finish what was submitted, ignoring its errors (the run is ending some other way already)."""
        try:
            self.wait()
        except Exception as exc:
            log.warning("background file work failed while stopping: %s", exc)
        self.pool.shutdown()


class JobRun:
    """The training hooks for one claim, plus what happens when training ends, however it ends."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], claim: jobs.Claim) -> None:
        self.settings, self.sessions, self.claim = settings, sessions, claim
        self.folder = settings.artifact_dir / str(claim.job_id)
        # One staging folder per claim: a worker that lost the job cleans up its own folder only, never
        # the files its successor is writing at the same moment.
        self.staging = self.folder / ".staging" / claim.token[:8]
        self.checkpoints = self.folder / "checkpoints"
        self.progress = Progress()
        # Set from other threads: "cancel" or "lease" by the heartbeat, "shutdown" by a signal.
        self.stop_reason: str | None = None
        self.deadline: float | None = None
        self.last_checkpoint = claim.checkpoint
        self.resume_step = 0
        self._state_dict: Callable[[], dict[str, torch.Tensor]] = dict
        self.publisher = Publisher(claim.job_id)

    # ------------------------------------------------------------ the whole run

    def run(self) -> str:
        """Train to the end and record how it ended; returns the job's final (or handed-back) status."""
        spec, job_id = self.claim.spec, self.claim.job_id
        try:
            check_precision(spec.precision, resolve_device(spec.device))
            data = load_dataset(spec.dataset, self.settings.data_dir, spec.train_samples, spec.test_samples, spec.seed)
            resume = self._load_checkpoint()
            if spec.max_runtime_seconds:
                self.deadline = time.monotonic() + spec.max_runtime_seconds
            fit(self.config(), data, self, resume)
            # The last epoch's pictures are drawing in the background; save the weights meanwhile.
            self._publish("weights.pt", "application/octet-stream", self._save_weights)
            self.publisher.wait()
            status = self._end("succeeded")
            if status == "succeeded":  # not when the lease was lost: the new owner may resume from them
                shutil.rmtree(self.checkpoints, ignore_errors=True)  # weights.pt holds what a user needs
                shutil.rmtree(self.staging.parent, ignore_errors=True)  # and what killed attempts left half-written
            return status
        except Stopped as stop:
            return self._stopped(stop)
        except jobs.LeaseLost:
            log.warning("job %s: lease lost; another worker owns it now", job_id)
            return "lost"
        except (DataError, TrainingError) as exc:
            return self._end("failed", str(exc))
        except torch.OutOfMemoryError:
            return self._end("failed", "out of memory on the training device: try a smaller batch_size or image_size")
        except Exception as exc:
            log.exception("job %s failed", job_id)
            return self._end("failed", f"{type(exc).__name__}: {exc}")
        finally:
            self.publisher.close()
            shutil.rmtree(self.staging, ignore_errors=True)

    def config(self) -> TrainConfig:
        """The training part of the job's spec (the spec's fields of the same names)."""
        return TrainConfig(**{f.name: getattr(self.claim.spec, f.name) for f in fields(TrainConfig)})

    def _stopped(self, stop: Stopped) -> str:
        job_id = self.claim.job_id
        if stop.reason == "lease":
            log.warning("job %s: lease lost; stopping without writing", job_id)
            return "lost"
        try:
            self.publisher.wait()  # the previous epoch's checkpoint and pictures first
        except jobs.LeaseLost:
            log.warning("job %s: lease lost while stopping; leaving it to its new owner", job_id)
            return "lost"
        if stop.reason == "shutdown" and stop.checkpoint is not None:
            name = self._save_checkpoint(stop.checkpoint(), mid_epoch=True)
            try:
                with transaction(self.sessions) as session:
                    jobs.hand_back(session, job_id, self.claim.token, name)
            except jobs.LeaseLost:
                (self.checkpoints / name).unlink(missing_ok=True)
                return "lost"
            self._forget_checkpoint(name)
            log.info("job %s: handed back to the queue at its checkpoint %s", job_id, name)
            return "queued"
        if stop.reason == "timeout":
            limit = self.claim.spec.max_runtime_seconds
            return self._end("failed", f"stopped after running longer than max_runtime_seconds ({limit:g} s)")
        return self._end("cancelled")

    def _end(self, status: str, error: str | None = None) -> str:
        if status != "succeeded":
            self.publisher.close()  # let pictures already under way land before the job is marked
        try:
            with transaction(self.sessions) as session:
                jobs.finish(session, self.claim.job_id, self.claim.token, status, error)
        except jobs.LeaseLost:
            log.warning("job %s: lease lost before it could be marked %s", self.claim.job_id, status)
            return "lost"
        log.info("job %s: %s%s", self.claim.job_id, status, f" ({error})" if error else "")
        return status

    # ------------------------------------------------------------ hooks called by `fit`

    def on_start(self, info: StartInfo) -> None:
        self.progress = Progress(
            steps_done=info.start_epoch * info.steps_per_epoch + self.resume_step,
            steps_total=info.steps_total,
            steps_at_start=info.start_epoch * info.steps_per_epoch + self.resume_step,
            started=time.monotonic(),
        )
        with transaction(self.sessions) as session:
            jobs.training_started(
                session,
                self.claim.job_id,
                self.claim.token,
                info.device,
                info.parameter_count,
                info.steps_total,
            )
        log.info(
            "job %s: training on %s (%s), %d parameters, %d steps, from epoch %d",
            self.claim.job_id,
            info.device,
            info.precision,
            info.parameter_count,
            info.steps_total,
            info.start_epoch,
        )
        initial = info.initial
        self.publisher.submit(lambda: self._publish_kernels("initial", initial, 0))

    def on_step(self, steps_done: int) -> None:
        self.progress.steps_done = steps_done
        if self.stop_reason is not None:
            raise Stopped(self.stop_reason)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Stopped("timeout")
        self.publisher.check()

    def on_epoch_end(self, end: EpochEnd) -> None:
        r, job_id, token = end.result, self.claim.job_id, self.claim.token
        with transaction(self.sessions) as session:
            jobs.record_epoch(session, job_id, token, asdict(r))
        log.info(
            "job %s: epoch %d/%d train_loss=%.4f test_loss=%.4f test_accuracy=%.4f (%.1f s, %.0f images/s)",
            job_id,
            r.epoch,
            self.claim.spec.epochs,
            r.train_loss,
            r.test_loss,
            r.test_accuracy,
            r.seconds,
            r.images_per_second,
        )
        self._state_dict = end.state_dict
        # The last epoch needs no checkpoint: weights.pt follows at once, and a crash in between costs
        # one epoch, redone from the previous checkpoint.
        final = r.epoch == self.claim.spec.epochs
        snapshot = None if final else to_cpu_copy(end.checkpoint())
        rows = [asdict(h) for h in end.history]
        trained = end.trained
        diff = Kernels(conv1=trained.conv1 - end.initial.conv1, conv2=trained.conv2 - end.initial.conv2)
        self.publisher.submit(lambda: self._epoch_files(r.epoch, snapshot, rows, trained, diff))

    def _epoch_files(
        self, epoch: int, snapshot: dict[str, Any] | None, rows: list[dict[str, float]], trained: Kernels, diff: Kernels
    ) -> None:
        """An epoch's checkpoint and pictures (on the publisher's thread)."""
        if snapshot is not None:
            name = self._save_checkpoint(snapshot, mid_epoch=False)
            try:
                with transaction(self.sessions) as session:
                    jobs.set_checkpoint(session, self.claim.job_id, self.claim.token, name)
            except jobs.LeaseLost:
                (self.checkpoints / name).unlink(missing_ok=True)
                raise
            self._forget_checkpoint(name)
        self._publish("curves.png", "image/png", lambda p: plots.draw_curves(rows, p))
        self._publish_kernels("trained", trained, epoch)
        self._publish_kernels("diff", diff, epoch)
        self._publish("metrics.csv", "text/csv", lambda p: p.write_text(jobs.metrics_csv(rows)))

    # ------------------------------------------------------------ files

    def _publish(self, name: str, content_type: str, write: Callable[[Path], object]) -> None:
        """Write a file to staging; if this worker still holds the job, rename it into place and record it."""
        staged = self.staging / name.replace("/", "-")
        staged.parent.mkdir(parents=True, exist_ok=True)
        write(staged)
        final = jobs.artifact_path(self.settings.artifact_dir, self.claim.job_id, name)
        final.parent.mkdir(parents=True, exist_ok=True)
        with transaction(self.sessions) as session:
            jobs.record_artifact(
                session, self.claim.job_id, self.claim.token, name, content_type, staged.stat().st_size
            )
            staged.replace(final)  # inside the transaction: the lease is still ours until it commits

    def _publish_kernels(self, stage: str, k: Kernels, epoch: int) -> None:
        f = self.claim.spec.conv2_filter
        self._publish(f"kernels/conv1/{stage}.png", "image/png", lambda p: plots.draw_conv1(k.conv1, stage, epoch, p))
        self._publish(
            f"kernels/conv2/{stage}.png", "image/png", lambda p: plots.draw_conv2(k.conv2, stage, epoch, f, p)
        )

    def _save_weights(self, path: Path) -> None:
        checkpoint.save(self._state_dict(), path)

    def _save_checkpoint(self, state: dict[str, Any], mid_epoch: bool) -> str:
        epoch = len(state["history"]) + (1 if mid_epoch else 0)
        name = f"{self.claim.token[:8]}-e{epoch:04d}-s{state['step']:06d}.pt"
        checkpoint.save(state, self.checkpoints / name)
        return name

    def _forget_checkpoint(self, name: str) -> None:
        """After the database points at `name`, the checkpoint it pointed at before is no longer needed."""
        if self.last_checkpoint and self.last_checkpoint != name:
            (self.checkpoints / self.last_checkpoint).unlink(missing_ok=True)
        self.last_checkpoint = name

    def _load_checkpoint(self) -> dict | None:
        if not self.claim.checkpoint:
            return None
        path = self.checkpoints / self.claim.checkpoint
        try:
            state = checkpoint.load(path)
        except (OSError, RuntimeError, EOFError) as exc:
            log.error("job %s: checkpoint %s unreadable (%s); starting over", self.claim.job_id, path, exc)
            return None
        self.resume_step = int(state.get("step", 0))
        log.info(
            "job %s: resuming after epoch %d, step %d",
            self.claim.job_id,
            len(state["history"]),
            self.resume_step,
        )
        return state


def to_cpu_copy(state: Any) -> Any:
    """A copy of a checkpoint dict that training can no longer change (tensors cloned to host memory)."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: to_cpu_copy(v) for k, v in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(to_cpu_copy(v) for v in state)
    return state
