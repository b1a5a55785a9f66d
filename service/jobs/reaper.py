"""Taking jobs back from workers that stopped: a lapsed lease (the reaper), or a worker its supervisor saw die.

A run that ends this way without a new checkpoint made no progress. A job whose `max_attempts` runs in a row ended so
fails, saying where it was stuck; runs that got further first do not count, so a job on workers that keep being
killed (spot machines, a recurring out-of-memory kill) goes on for as long as each run checkpoints something.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from service import artifacts, events, wakeup
from service.models import Job, Status, utcnow


def reap_expired(session: Session, now: datetime | None = None) -> int:
    """Take back running jobs whose lease lapsed: re-queue them, or fail them after `max_attempts` runs in a row
    without progress. A job whose cancel was requested ends `cancelled` instead. Returns how many were taken back."""
    now = now or utcnow()
    return len(_take_back(session, Job.lease_expires_at < now, now))


def release_dead_worker(session: Session, worker_id: str) -> list[int]:
    """Take back the running job of a worker seen to die (its supervisor reaped the process) at once, instead of
    when its lease lapses; the same outcomes as `reap_expired`. Returns the ids of the jobs taken back."""
    return _take_back(session, Job.worker_id == worker_id, utcnow())


def stuck(runs: int, checkpoint: str | None) -> str:
    """Why a job failed that made no progress in `runs` runs in a row from `checkpoint`."""
    which = (
        f"each of its last {runs} attempts, none of which got" if runs > 1 else "its last attempt, which did not get"
    )
    return f"the worker running this job stopped responding on {which} past {artifacts.describe_position(checkpoint)}"


def stalled(runs: int, checkpoint: str | None, limit: int) -> str:
    """What a claim of a job whose runs keep ending without progress says in the job's log (and event stream)."""
    return (
        f"claimed {runs} times without progress since {artifacts.describe_position(checkpoint)}: the last {runs - 1} "
        f"run(s) ended before a newer checkpoint; it fails after {limit} such runs in a row"
    )


def _take_back(session: Session, which: ColumnElement[bool], now: datetime) -> list[int]:
    """Re-queue the running jobs `which` selects; fail those out of runs without progress; cancel those asked to
    stop. One row at a time: a failure names where its job was stuck."""
    rows = session.execute(
        select(Job.id, Job.cancel_requested, Job.runs_without_progress, Job.max_attempts, Job.checkpoint)
        .where(Job.status == Status.RUNNING, which)
        .order_by(Job.id)
        .with_for_update()
    ).all()
    cleared = {"lease_token": None, "lease_expires_at": None, "worker_id": None, "eta_seconds": None}
    taken: list[int] = []
    for row in rows:
        values: dict[str, Any]
        if row.cancel_requested:
            values = {"status": Status.CANCELLED, "finished_at": now}
        elif row.runs_without_progress >= row.max_attempts:
            values = {
                "status": Status.FAILED,
                "finished_at": now,
                "error": stuck(row.runs_without_progress, row.checkpoint),
            }
        else:
            values = {"status": Status.QUEUED}
        done = session.execute(
            update(Job)
            .where(Job.id == row.id, Job.status == Status.RUNNING, which)  # still as selected
            .values(**cleared, **values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            events.emit_status(session, [row.id], values["status"], error=values.get("error"))
            taken.append(row.id)
            if values["status"] == Status.QUEUED:
                wakeup.notify_queued(session)
            else:
                events.compact(session, [row.id])
    return taken
