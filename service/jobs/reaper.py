"""Taking jobs back from workers that stopped: a lapsed lease (the reaper), or a worker its supervisor saw die."""

from datetime import datetime

from sqlalchemy import ColumnElement, String, and_, cast, literal, update
from sqlalchemy.orm import Session

from service import events, wakeup
from service.models import Job, Status, utcnow


def reap_expired(session: Session, now: datetime | None = None) -> int:
    """Take back running jobs whose lease lapsed: re-queue them, or fail them after `max_attempts`.

    A job whose cancel was requested ends `cancelled` instead. Returns how many jobs were taken back.
    """
    now = now or utcnow()
    return len(_take_back(session, Job.lease_expires_at < now, now))


def release_dead_worker(session: Session, worker_id: str) -> list[int]:
    """Take back the running job of a worker seen to die (its supervisor reaped the process) at once, instead of
    when its lease lapses; the same outcomes as `reap_expired`. Returns the ids of the jobs taken back."""
    return _take_back(session, Job.worker_id == worker_id, utcnow())


def _take_back(session: Session, which: ColumnElement[bool], now: datetime) -> list[int]:
    """Re-queue the running jobs `which` selects; fail those out of attempts; cancel those asked to stop."""
    running = and_(Job.status == Status.RUNNING, which)
    cleared = {"lease_token": None, "lease_expires_at": None, "worker_id": None, "eta_seconds": None}
    taken: list[int] = []
    for where, values in (
        (Job.cancel_requested.is_(True), {"status": Status.CANCELLED, "finished_at": now}),
        (
            Job.attempts >= Job.max_attempts,
            {
                "status": Status.FAILED,
                "finished_at": now,
                "error": literal("the worker running this job stopped responding on each of its ")
                + cast(Job.attempts, String)
                + literal(" attempts"),
            },
        ),
        (Job.attempts < Job.max_attempts, {"status": Status.QUEUED}),
    ):
        rows = session.execute(
            update(Job)
            .where(running, where)
            .values(**cleared, **values)
            .returning(Job.id, Job.error)
            .execution_options(synchronize_session=False)
        ).all()
        for row in rows:
            events.emit_status(session, [row.id], Status(str(values["status"])), error=row.error)
        taken += [row.id for row in rows]
        if rows and values["status"] == Status.QUEUED:
            wakeup.notify_queued(session)
        elif rows:
            events.compact(session, [row.id for row in rows])
    return taken
