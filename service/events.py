"""A job's events: written beside each change, in its transaction, and read back in order by the event streams.

Every state transition (`service.jobs`), progress report, recorded epoch, published file (`service.records`) and
log line the worker keeps for the job adds one row to `job_events`. Its id orders the stream: a client resuming
with `Last-Event-ID` gets exactly the rows after it. An `end` row follows each move into a final status.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Row, delete, func, insert, select
from sqlalchemy.orm import Session

from service.models import FINISHED, JobEvent, Status, utcnow

EVENTS = JobEvent.__table__
# The most log lines GET /jobs/{id}/logs returns, and the most events one poll of a stream reads.
MAX_TAIL = 10_000
BATCH = 500


class Kind(StrEnum):
    STATUS = "status"
    PROGRESS = "progress"
    EPOCH = "epoch"
    ARTIFACT = "artifact"
    LOG = "log"
    END = "end"


# What the all-jobs stream (GET /events) carries: enough for a list of jobs.
LIST_KINDS = (Kind.STATUS, Kind.PROGRESS)


class ProgressData(BaseModel):
    """A progress event's data: what the worker's heartbeat wrote, and the API reads back to show as `progress`."""

    steps_done: int
    steps_total: int | None
    eta_seconds: float | None
    epochs_completed: int = 0
    updated_at: datetime | None = None


def emit(session: Session, job_id: int, kind: Kind, data: dict[str, Any]) -> None:
    """Add one event for `job_id` to the current transaction."""
    session.execute(insert(JobEvent).values(job_id=job_id, kind=kind, data=data, created_at=utcnow()))


def emit_status(
    session: Session,
    job_ids: Iterable[int],
    status: Status,
    error: str | None = None,
    waiting_for: str | None = None,
    end: bool = True,
) -> None:
    """The jobs moved to `status`; a final one is followed by `end`, unless `end` is False: a worker ending its job
    sends `end` itself (`emit_end`) once it has kept the job's last log lines, so that a stream misses none."""
    rows = [
        {"job_id": j, "kind": Kind.STATUS, "data": {"status": status, "error": error, "waiting_for": waiting_for}}
        for j in job_ids
    ]
    if status in FINISHED and end:
        rows += [{"job_id": r["job_id"], "kind": Kind.END, "data": {"status": status}} for r in rows]
    if rows:
        now = utcnow()
        session.execute(insert(JobEvent), [{**r, "created_at": now} for r in rows])


def compact(session: Session, job_ids: Sequence[int]) -> None:
    """Drop the finished jobs' superseded progress events: each keeps its last one.

    A progress event is a snapshot that the next one replaces, one every heartbeat (2 s): a one-hour job wrote
    1,800. Once the job has finished, a stream that replays it (from the start, or after a `Last-Event-ID`) still
    gets every status, epoch, file, log line and the `end`, and of the progress what it would show in the end: the
    last. Called in the transaction that makes the job final.
    """
    if not job_ids:
        return
    later = EVENTS.alias("later")
    newest = (
        select(func.max(later.c.id))
        .where(later.c.job_id == JobEvent.job_id, later.c.kind == Kind.PROGRESS)
        .scalar_subquery()
    )
    session.execute(
        delete(JobEvent)
        .where(JobEvent.job_id.in_(job_ids), JobEvent.kind == Kind.PROGRESS, JobEvent.id < newest)
        .execution_options(synchronize_session=False)
    )


def emit_end(session: Session, job_id: int, status: Status) -> None:
    """The job's stream is complete: nothing more will be written for it."""
    emit(session, job_id, Kind.END, {"status": status})


def end_id(session: Session, job_id: int) -> int | None:
    """The id of the job's `end` event, if it has one."""
    query = select(func.max(EVENTS.c.id)).where(EVENTS.c.job_id == job_id, EVENTS.c.kind == Kind.END)
    found = session.connection().execute(query).scalar()
    return None if found is None else int(found)


def emit_logs(session: Session, job_id: int, lines: Sequence[str]) -> None:
    """Keep log lines the worker wrote for the job."""
    if lines:
        now = utcnow()
        rows = [{"job_id": job_id, "kind": Kind.LOG, "data": {"line": line}, "created_at": now} for line in lines]
        session.execute(insert(JobEvent), rows)


def after(session: Session, cursor: int, job_id: int | None = None, kinds: Sequence[str] = ()) -> Sequence[Row[Any]]:
    """Up to BATCH events after event `cursor`, oldest first: one job's, or (job_id None) every job's."""
    query = select(EVENTS).where(EVENTS.c.id > cursor)
    if job_id is not None:
        query = query.where(EVENTS.c.job_id == job_id)
    if kinds:
        query = query.where(EVENTS.c.kind.in_(kinds))
    return session.connection().execute(query.order_by(EVENTS.c.id).limit(BATCH)).all()


def last_id(session: Session) -> int:
    """The newest event's id (0 when there is none): where a stream that wants only what comes next starts."""
    return int(session.connection().execute(select(func.max(EVENTS.c.id))).scalar() or 0)


def log_lines(session: Session, job_id: int, tail: int) -> list[str]:
    """The job's last `tail` log lines, oldest first."""
    query = (
        select(EVENTS.c.data)
        .where(EVENTS.c.job_id == job_id, EVENTS.c.kind == Kind.LOG)
        .order_by(EVENTS.c.id.desc())
        .limit(tail)
    )
    return [str(data["line"]) for data in reversed(session.connection().execute(query).scalars().all())]
