"""Runs one claimed job: loads its data, trains, and publishes metrics, checkpoints and pictures.

Every write is fenced by the claim's lease token (see `worker.publish` and `worker.checkpoints`). Metrics are recorded
as each epoch ends; checkpoints (`worker.timed`) and pictures are written on background threads while training goes on.

What is not the job's fault does not fail it: a database write that cannot get through is retried until it does
(`worker.retry`), and a full disk sends the job back to the queue, its attempt not spent, to resume from its last
checkpoint once there is room (`worker.disk`).
"""

import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import torch
from sqlalchemy.orm import Session, sessionmaker

from service import artifacts, jobs, queries, records
from service.config import Settings
from service.models import Status
from service.storage import ArtifactStore
from worker import checkpoint, disk, retry
from worker.checkpoint import Checkpoint
from worker.checkpoints import Checkpoints
from worker.data import DataError, Dataset, load_dataset
from worker.disk import DiskFull
from worker.hardware import TrainingError, check_precision, resolve_device
from worker.hooks import EpochEnd, StartInfo, Stopped, StopReason
from worker.joblog import JobLogger
from worker.pictures.epoch import JobPictures
from worker.progress import Progress
from worker.publish import ArtifactWriter, Publisher
from worker.timed import CheckpointTimer
from worker.train import fit
from worker.tuning import Tuning

T = TypeVar("T")


class JobRun:
    """The training hooks for one claim, plus what happens when training ends, however it ends."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], store: ArtifactStore, claim: jobs.Claim
    ) -> None:
        self.settings, self.sessions, self.claim = settings, sessions, claim
        self.files = ArtifactWriter(store, sessions, claim, self._give_up)
        self.checkpoints = Checkpoints(store, sessions, claim, self._give_up)
        self.publisher = Publisher(claim.job_id)
        self.progress = Progress()
        self.timer: CheckpointTimer  # from the start of training: when the next timed checkpoint is due
        # Set from other threads: CANCEL or LEASE by the heartbeat, SHUTDOWN by a signal.
        self.stop_reason: StopReason | None = None
        # Why the job went back to the queue for want of disk space, if it did: the worker then pauses claiming.
        self.disk_full: DiskFull | None = None
        self.deadline: float | None = None
        self.resume_step = 0
        self.pictures: JobPictures  # once the data is loaded: the mistakes grid shows test images
        self._state_dict: Callable[[], dict[str, torch.Tensor]] = dict
        self.log = JobLogger(claim.job_id)

    # The whole run; then the hooks `fit` calls (on_start, on_step, within_step, on_epoch_end).

    def run(self) -> Status | None:
        """Train to the end and record how it ended: the job's final (or handed-back) status, or None when
        the lease was lost (another worker owns the job, and this one recorded nothing)."""
        try:
            return self._settle(self._train)
        finally:
            self.publisher.close()
            self.files.discard()

    def _train(self) -> Status | None:
        """Load the data, train from where the job stopped (if it did), publish the weights, mark it succeeded."""
        spec, job_id = self.claim.spec, self.claim.job_id
        check_precision(spec.precision, resolve_device(spec.device))
        data = self.load_data()
        self.pictures = JobPictures(self.files, spec, data)
        resume = self._resume()
        # Room for its next file, counting its own checkpoint as room: where only that is missing it trains on.
        disk.checkpoint_room(self.files.staging, disk.largest_write(spec), self.checkpoints.own_bytes())
        if spec.max_runtime_seconds:
            self.deadline = time.monotonic() + spec.max_runtime_seconds
        fit(spec, data, self, resume, Tuning.parse(self.settings.engine_tuning))
        # The last epoch's pictures are drawing in the background; save the weights meanwhile.
        self._room_for_weights()
        self.files.publish(artifacts.WEIGHTS, lambda p: checkpoint.save(self._state_dict(), p))
        self.publisher.wait()
        status = self._end(Status.SUCCEEDED)
        if status == Status.SUCCEEDED:  # not when the lease was lost: the new owner may resume from them
            self.checkpoints.discard_all_but_current()  # the final one stays, for a continue
            self.files.store.discard_staging(job_id)  # and what killed attempts left half-written
        return status

    def _settle(self, work: Callable[[], Status | None]) -> Status | None:
        """`work()`'s status, or what its exception makes of the job: the one place a run's endings are told apart.
        A stop is settled here too (its checkpoint and marking may meet a lost lease, a full disk, a database away)."""
        try:
            return work()
        except Stopped as stop:
            return self._settle(partial(self._stopped, stop))
        except jobs.LeaseLost:
            self.log.warning("lease lost; another worker owns it now")
            return None
        except DiskFull as full:
            return self._wait_for_disk(full)
        except retry.DatabaseAway as away:
            self.log.warning("%s; leaving the job to its lease", away)
            return None
        except (DataError, TrainingError) as exc:
            return self._end(Status.FAILED, str(exc))
        except torch.OutOfMemoryError:
            return self._end(
                Status.FAILED, "out of memory on the training device: try a smaller batch_size or image_size"
            )
        except Exception as exc:
            self.log.exception("failed")
            return self._end(Status.FAILED, f"{type(exc).__name__}: {exc}")

    def load_data(self) -> Dataset:
        """The job's training and test images, as its spec asks."""
        spec = self.claim.spec
        return load_dataset(spec.dataset, self.settings.data_dir, spec.train_samples, spec.test_samples, spec.seed)

    def _write(self, work: Callable[[Session], T], what: str) -> T:
        """One database write for this job, retried while the database is unreachable (see `worker.retry`)."""
        return retry.write(self.sessions, work, what, self._give_up, logger=self.log)

    def _give_up(self) -> bool:
        """Whether a database write should stop retrying: the worker is shutting down, or lost the job anyway."""
        return self.stop_reason in (StopReason.SHUTDOWN, StopReason.LEASE)

    def _stopped(self, stop: Stopped) -> Status | None:
        """Training stopped between steps: hand the job back at a checkpoint, or end it, as the reason says."""
        if stop.reason == StopReason.LEASE:
            self.log.warning("lease lost; stopping without writing")
            return None
        if stop.unfinished:
            self.log.info("stopped (%s) during %s, which is dropped", stop.reason, stop.unfinished)
        self.publisher.wait()  # the previous epoch's checkpoint and pictures first
        if stop.reason == StopReason.SHUTDOWN and stop.checkpoint is not None:
            name = self.timer.hand_back(stop.checkpoint)
            self.log.info("handed back to the queue at its checkpoint %s", name)
            return Status.QUEUED
        if stop.reason == StopReason.TIMEOUT:
            limit = self.claim.spec.max_runtime_seconds
            return self._end(Status.FAILED, f"stopped after running longer than max_runtime_seconds ({limit:g} s)")
        return self._end(Status.CANCELLED)

    def _wait_for_disk(self, full: DiskFull) -> Status | None:
        """Hand the job back to the queue with the reason shown on it; its attempt is not spent."""
        job_id, token = self.claim.job_id, self.claim.token
        self.disk_full = full
        self.publisher.close()
        self.log.warning("%s; back to the queue until there is room", full)
        try:
            self._write(lambda s: jobs.hand_back(s, job_id, token, None, waiting_for=str(full)), "handing it back")
        except (jobs.LeaseLost, retry.DatabaseAway):
            return None
        return Status.QUEUED

    def _room_for_weights(self) -> None:
        """Room for weights.pt; made by dropping the job's checkpoints when only they take it (training is done)."""
        if not disk.checkpoint_room(self.files.staging, disk.weights_bytes(), self.checkpoints.own_bytes()):
            self.publisher.wait()  # a checkpoint still being written takes room too
            self.log.warning("no room for weights.pt beside the job's checkpoint; dropping the checkpoint first")
            self.checkpoints.discard_all()

    def _end(self, status: Status, error: str | None = None) -> Status | None:
        job_id, token = self.claim.job_id, self.claim.token
        if status != Status.SUCCEEDED:
            self.publisher.close()  # let pictures already under way land before the job is marked
        try:
            self._write(lambda s: jobs.finish(s, job_id, token, status, error), f"marking it {status}")
        except jobs.LeaseLost:
            # After a connection lost during the commit, the retry finds its own write done: not a lost lease.
            if self._write(lambda s: queries.job_row(s, job_id).status, "reading its status") != status:
                self.log.warning("lease lost before it could be marked %s", status)
                return None
        except retry.DatabaseAway as away:
            self.log.warning("%s; leaving the job to its lease", away)
            return None
        self.log.info("%s%s", status, f" ({error})" if error else "")
        return status

    def _resume(self) -> Checkpoint | None:
        saved = self.checkpoints.load()
        if saved is not None:
            self.resume_step = saved.step
            self.log.info("resuming after epoch %d, step %d", len(saved.history), saved.step)
        return saved

    def on_start(self, info: StartInfo) -> None:
        """Training starts: record its device and size, and draw the initial pictures."""
        done = info.start_epoch * info.steps_per_epoch + self.resume_step
        self.progress = Progress(done, info.steps_total, steps_at_start=done, started=time.monotonic())
        job_id, token = self.claim.job_id, self.claim.token
        self._write(
            lambda s: records.training_started(s, job_id, token, info.device, info.parameter_count, info.steps_total),
            "recording its start",
        )
        self.log.info(
            "training on %s (%s), %d parameters, %d steps, from epoch %d",
            info.device,
            info.precision,
            info.parameter_count,
            info.steps_total,
            info.start_epoch,
        )
        self.publisher.submit(partial(self.pictures.start, info.precision, info.initial))
        self.timer = CheckpointTimer(self.settings.checkpoint_seconds, self.checkpoints, self.publisher)

    def on_step(self, steps_done: int, checkpoint: Callable[[], Checkpoint] | None = None) -> None:
        """A step ended: note the progress; stop if asked to or out of time; raise a background failure;
        checkpoint if one is due (`worker.timed`)."""
        self.progress.step(steps_done)
        if self.stop_reason is not None:
            raise Stopped(self.stop_reason)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Stopped(StopReason.TIMEOUT)
        self.publisher.check()
        self.timer.step(checkpoint)

    def within_step(self) -> None:
        """Within a step: a cancel, a lost lease or the deadline drops the step under way; a shutdown waits for its
        end, where the job checkpoints to resume exactly (the step has drawn dropout's random numbers by then)."""
        if self.stop_reason in (StopReason.CANCEL, StopReason.LEASE):
            raise Stopped(self.stop_reason)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Stopped(StopReason.TIMEOUT)

    def on_epoch_end(self, end: EpochEnd) -> None:
        """An epoch ended: record it, then checkpoint and draw it on the background threads."""
        r, job_id, token = end.result, self.claim.job_id, self.claim.token
        self._write(lambda s: records.record_epoch(s, job_id, token, r), f"recording epoch {r.epoch}")
        self.log.info(
            "epoch %d/%d train_loss=%.4f test_loss=%.4f test_accuracy=%.4f (%.1f s, %.0f images/s)",
            r.epoch,
            self.claim.spec.epochs,
            r.train_loss,
            r.test_loss,
            r.test_accuracy,
            r.seconds,
            r.images_per_second,
        )
        self._state_dict = end.state_dict
        # The last epoch's too: what POST /jobs/{id}/continue goes on from (weights.pt has no optimizer state).
        self.timer.epoch_end(end.checkpoint)
        self.publisher.submit(partial(self.pictures.epoch, end.history, end.initial, end.trained))
