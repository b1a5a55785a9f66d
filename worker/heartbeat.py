"""The heartbeat of a running job: renews its lease, publishes progress and keeps the job's log lines, on a thread
of its own; tells the run to stop when the job was cancelled or the lease is gone."""

import threading
import time

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from service import events, jobs, workers
from service.config import Settings
from service.db import is_connection_error, transaction
from worker import retry
from worker.hooks import StopReason
from worker.joblog import JobLog, JobLogger
from worker.runner import JobRun


class Heartbeat(threading.Thread):
    """Renews the lease and publishes progress every `heartbeat_seconds`; tells the run to stop when
    the job was cancelled or the lease is gone.

    Given what it needs and nothing more: the run it beats for, the job's log, the settings (its intervals), the
    database, the id of the worker it reports as running the job, and where database trouble is noted."""

    def __init__(
        self,
        run: JobRun,
        job_log: JobLog,
        settings: Settings,
        sessions: sessionmaker[Session],
        worker_id: str,
        outages: retry.Outages,
    ) -> None:
        super().__init__(name=f"heartbeat-{run.claim.job_id}", daemon=True)
        self.run_, self.job_log, self.settings, self.sessions = run, job_log, settings, sessions
        self.worker_id, self.outages = worker_id, outages
        self.log = JobLogger(run.claim.job_id)
        self.done = threading.Event()
        self.waiting_since: float | None = None  # when the beat under way began waiting for the database

    def run(self) -> None:
        s, claim = self.settings, self.run_.claim
        threading.Thread(target=self._watch, name=f"stall-watch-{claim.job_id}", daemon=True).start()
        while not self.done.wait(s.heartbeat_seconds):
            p, lines = self.run_.progress, self.job_log.take()
            self.waiting_since = time.monotonic()
            try:
                with transaction(self.sessions) as session:
                    cancel = jobs.heartbeat(
                        session,
                        claim.job_id,
                        claim.token,
                        s.lease_seconds,
                        p.steps_done,
                        p.steps_total,
                        p.eta_seconds(),
                    )
                    workers.touch_worker(session, self.worker_id, claim.job_id)
                    events.emit_logs(session, claim.job_id, lines)
            except jobs.LeaseLost:
                # The job ended (or moved on) since this beat began: its lines are kept when the run ends.
                self.job_log.put_back(lines)
                self.run_.stop_reason = StopReason.LEASE
                return
            except (DBAPIError, PoolTimeout) as exc:  # try again next beat; the lease has slack for a few misses
                if not is_connection_error(exc):
                    raise
                self.outages.note()
                self.job_log.put_back(lines)
                self.log.warning("heartbeat failed: %s", retry.first_line(exc))
                continue
            finally:
                self.waiting_since = None
            if cancel and self.run_.stop_reason is None:
                self.run_.stop_reason = StopReason.CANCEL

    def _watch(self) -> None:
        """Say so when a beat has waited past the database timeout: a silent network holds a connection open
        without failing it, and nothing else would tell. It counts as database trouble for the reaper's grace."""
        warned = False
        while not self.done.wait(1.0):
            since = self.waiting_since
            if since is None or time.monotonic() - since < self.settings.db_timeout_seconds:
                warned = False
                continue
            self.outages.note()
            if not warned:
                self.log.warning(
                    "the database has not answered a heartbeat for %.0f s; still waiting", time.monotonic() - since
                )
                warned = True

    def stop(self) -> None:
        """Stop beating (the run has ended) and wait for the beat under way."""
        self.done.set()
        self.join()
