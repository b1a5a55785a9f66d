"""The worker process: claim a job, train it under a heartbeat-renewed lease, repeat.

A first SIGTERM/SIGINT stops claiming and makes the running job checkpoint and go back to the queue;
a second one exits at once (the lease then brings the job back). Each pass also reaps jobs whose
workers died, so any live worker recovers them: but not within one lease of this worker's own database
trouble, since an outage silences every owner's heartbeat too (see `worker.retry`). A worker whose artifact
volume has no room for a job's files takes none until it has, and says why in /health.
"""

import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from types import FrameType

import torch
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from service import events, jobs, workers
from service.config import Settings
from service.db import is_connection_error, make_engine, make_sessionmaker, transaction
from service.models import FINISHED, Job, Status
from service.spec import JobSpec
from service.storage import ArtifactStore, make_store
from service.wakeup import Wakeups
from worker import disk, retry
from worker.hardware import bf16_is_native, resolve_device
from worker.heartbeat import Heartbeat
from worker.hooks import StopReason
from worker.joblog import JobLog, JobLogger
from worker.runner import JobRun
from worker.train import warm_up
from worker.tuning import Tuning

log = logging.getLogger("worker")


def device_label() -> str:
    """What this worker can run on, as shown in /health: `cuda (<name>)` or `cpu`."""
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


# Builds the run for one claim; the default is JobRun itself, and the benchmark passes one that takes timings.
RunFactory = Callable[[Settings, sessionmaker[Session], ArtifactStore, jobs.Claim], JobRun]


class Worker:
    """One worker process's loop; `run_once` is one pass, `run` the loop around it."""

    def __init__(self, settings: Settings, worker_id: str | None = None, run_factory: RunFactory = JobRun) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url, settings.db_timeout_seconds)
        self.sessions = make_sessionmaker(engine=self.engine)
        self.store = make_store(settings)
        self.run_factory = run_factory
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.device = device_label()
        # Whether bf16 is native where this worker trains `auto` jobs: if not, it leaves bf16 jobs to others.
        self.bf16_native = bf16_is_native(resolve_device("auto"))
        self.stopping = threading.Event()
        self.signals = 0
        self.current: JobRun | None = None
        self.outages = retry.outages(self.sessions)
        self.wakeups = Wakeups(settings.database_url)  # a queued job wakes it at once on Postgres
        self.problem: str | None = None  # why this worker takes no jobs now (no room for their files)
        self.room_wanted = disk.any_job_needs()  # more once a job went back for want of room: what it needed
        self.tuning = Tuning.parse(settings.engine_tuning)  # TuningError, before anything starts, if it is wrong

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            os._exit(128 + signum)  # second signal: now, whatever is running; the lease recovers the job
        log.info(
            "worker %s: %s received; finishing up (send it again to exit at once)",
            self.id,
            signal.strsignal(signum),
        )
        self.stop()

    def stop(self) -> None:
        """Stop claiming; a running job checkpoints and goes back to the queue."""
        self.stopping.set()
        self.wakeups.poke()
        if self.current is not None:
            self.current.stop_reason = StopReason.SHUTDOWN

    def run(self, burst: bool = False) -> None:
        """Work until stopped, or, with `burst`, until the queue has nothing for this worker."""
        host, pid = socket.gethostname(), os.getpid()
        retry.write(
            self.sessions,
            lambda session: workers.register_worker(session, self.id, host, pid, self.device, self.bf16_native),
            f"worker {self.id}: registering",
            self.stopping.is_set,
        )
        self._sweep_staging()
        self.wakeups.start()
        if self.tuning.warm_up:
            self._warm_up()
        log.info(
            "worker %s: ready on %s (bf16 %s; engine tuning: %s), polling %s",
            self.id,
            self.device,
            "native" if self.bf16_native else "emulated: bf16 jobs are left to workers with native bf16",
            self.tuning.describe(),
            self.engine.url.render_as_string(),
        )
        try:
            while not self.stopping.is_set():
                seen = self.wakeups.seen()  # a job queued after this wakes the wait below, even if before it
                try:
                    ran = self.run_once()
                except (DBAPIError, PoolTimeout) as exc:
                    if not is_connection_error(exc):
                        raise
                    self.outages.note()  # the database is away for a moment: wait, then go on
                    log.warning("worker %s: database unavailable, retrying: %s", self.id, retry.first_line(exc))
                    ran = False
                if not ran:
                    if burst:
                        break
                    wait = self.wakeups.interval(self.settings.poll_seconds, self.settings.lease_seconds)
                    self.wakeups.wait(wait, self.stopping, since=seen)
        finally:
            self.wakeups.stop()
            try:
                with transaction(self.sessions) as session:
                    workers.worker_stopped(session, self.id)
            except (DBAPIError, PoolTimeout) as exc:  # /health stops listing it once its heartbeat is old
                log.warning("worker %s: could not say goodbye: %s", self.id, retry.first_line(exc))
            self.engine.dispose()
            log.info("worker %s: stopped", self.id)

    def _warm_up(self) -> None:
        """One step of a default job on synthetic images before the first claim, so that the first job does not
        pay for the kernels the device chooses or compiles for its shapes (`Tuning.warm_up`)."""
        spec = JobSpec()
        shapes = f"batch {spec.batch_size}, {spec.image_size} px"
        log.info("worker %s: warming up on a default job's shapes (%s)", self.id, shapes)
        log.info("worker %s: warmed up in %.1f s", self.id, warm_up(spec, self.tuning))

    def run_once(self) -> bool:
        """Reap expired leases, claim one job and run it; False when there was nothing to claim."""
        s = self.settings
        problem = self._disk_problem()
        # An owner cut off by the same outage renews its lease within a heartbeat of the database's return.
        may_reap = self.outages.calm_for() >= s.lease_seconds
        with transaction(self.sessions) as session:
            reaped = jobs.reap_expired(session) if may_reap else 0
            workers.touch_worker(session, self.id, None)
            if problem != self.problem:
                workers.set_problem(session, self.id, problem)
            claim = None
            if problem is None:
                claim = jobs.claim_next(
                    session, self.id, self.device != "cpu", s.lease_seconds, s.worker_alive_seconds, self.bf16_native
                )
        if problem != self.problem:
            if problem:
                log.warning("worker %s: taking no jobs: %s", self.id, problem)
            else:
                log.info("worker %s: there is room on the artifact volume again; taking jobs", self.id)
            self.problem = problem
        if reaped:
            log.info("worker %s: took back %d job(s) whose worker stopped responding", self.id, reaped)
        if claim is None:
            return False
        with JobLog(claim.job_id) as job_log:
            JobLogger(claim.job_id).info("claimed by worker %s (attempt %d)", self.id, claim.attempt)
            if claim.runs_without_progress > 1:
                JobLogger(claim.job_id).warning(
                    jobs.stalled(claim.runs_without_progress, claim.checkpoint, claim.spec.max_attempts)
                )
            run = self.run_factory(s, self.sessions, self.store, claim)
            self.current = run
            if self.stopping.is_set():
                run.stop_reason = StopReason.SHUTDOWN
            beat = Heartbeat(run, job_log, s, self.sessions, self.id, self.outages)
            beat.start()
            status = None
            try:
                status = run.run()
            finally:
                beat.stop()
                self.current = None
                self._keep_log(claim.job_id, job_log, status if status and status.finished else None)
        if run.disk_full is not None:
            self.problem = None  # recorded afresh by the next pass, which finds the disk as the job did
            # Until then no claim: it would only take the job again and hand it back.
            self.room_wanted = run.disk_full.need or disk.checkpoint_bytes("adam") + disk.MARGIN_BYTES
        return True

    def _sweep_staging(self) -> None:
        """Remove what workers killed on this machine left staged for jobs since finished or deleted: no claim of
        theirs will ever clean it up, and on a host whose scratch folder nobody else shares nothing else would."""
        staged = self.store.staged_jobs()
        if not staged:
            return
        with transaction(self.sessions) as session:
            live = set(session.scalars(select(Job.id).where(Job.id.in_(staged), Job.status.not_in(FINISHED))))
        for job_id in set(staged) - live:
            self.store.discard_staging(job_id)

    def _keep_log(self, job_id: int, job_log: JobLog, ended: Status | None) -> None:
        """Store the job's last log lines (the heartbeat stored the others as it went); then, if the run ended the
        job, the `end` of its event stream, which must follow every line."""

        def keep(session: Session) -> None:
            events.emit_logs(session, job_id, lines)
            if ended is not None:
                events.emit_end(session, job_id, ended)

        lines, about = job_log.take(), JobLogger(job_id)
        try:
            retry.write(self.sessions, keep, "keeping its log", self.stopping.is_set, logger=about)
        except retry.DatabaseAway as away:
            about.warning("%s; %d log lines not kept", away, len(lines))
        except IntegrityError:
            # Deleted in the moment after it finished: its lines have no job to belong to. That is this worker's
            # news, not its end; any other broken constraint is a fault and still raises.
            with transaction(self.sessions) as session:
                if session.get(Job, job_id) is not None:
                    raise
            log.info("worker %s: job %d was deleted as it ended; %d log lines dropped", self.id, job_id, len(lines))

    def _disk_problem(self) -> str | None:
        """Why this worker should not claim: the volume it writes files on (the artifacts' own, or with a bucket
        the local scratch folder) has no room for a job's biggest file."""
        try:
            disk.require(self.store.scratch, self.room_wanted - disk.MARGIN_BYTES)
        except disk.DiskFull as full:
            return str(full)
        self.room_wanted = disk.any_job_needs()
        return None
