"""Live: a job's event stream, every job's status and progress, and a job's log.

Streams poll `job_events` with one short read transaction every POLL_SECONDS and hold no session in between; an
event's id is its row's, so a browser that reconnects with `Last-Event-ID` misses nothing and repeats nothing.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import Row, select
from sqlalchemy.orm import Session
from starlette.types import Message, Receive, Scope, Send

from service import events, queries
from service.api.deps import Database, JobIdPath, ReadDatabaseDep
from service.api.presenter import epoch_out, epoch_record, progress_out
from service.api.schemas import Progress
from service.events import Kind
from service.models import FINISHED
from service.spec import JobSpec


class StreamRoute(APIRoute):
    """A route whose stream is no error once its client has left.

    FastAPI's event streams pass events through memory streams; when the client leaves while events are queued, the
    closed end raises BrokenResourceError out of FastAPI's own task group, which the server would log as a ~140-line
    traceback every time a browser tab closes. Before the response has begun, every error still propagates."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The route, as APIRoute handles it, with the client's leaving mid-stream quiet."""
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await super().handle(scope, receive, sending)
        except* (anyio.BrokenResourceError, anyio.ClosedResourceError):
            if not started:
                raise


router = APIRouter(tags=["events"], route_class=StreamRoute)

# How often a stream looks for new events: prompt for a person watching, a trifle for the database.
POLL_SECONDS = 0.5
# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0
# How long a finished job's stream waits for the `end` its worker sends after the last log lines.
END_GRACE_SECONDS = 10.0
# How long a browser waits before reconnecting a dropped stream.
RETRY_MS = 2000
STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}
}

# The largest id the events table can hold (a signed 64-bit integer, on SQLite and Postgres alike).
MAX_EVENT_ID = 2**63 - 1


async def resume_after(
    last_event_id: Annotated[
        str | None,
        Header(
            description="Resume after this event: browsers send it when they reconnect. A value that is not an "
            "event id (not a whole number from 0, or past the largest id) is ignored, as if none had been sent."
        ),
    ] = None,
) -> int | None:
    """The event id to resume after, or None when the header is missing or names no possible event.

    An unusable value is ignored rather than refused: a browser's EventSource retries an error answer forever,
    with the same header each time.
    """
    value = (last_event_id or "").strip()
    if not value.isascii() or not value.isdigit() or int(value) > MAX_EVENT_ID:
        return None
    return int(value)


LastEventId = Annotated[int | None, Depends(resume_after)]


async def existing_job(job_id: JobIdPath, db: ReadDatabaseDep) -> Row[Any]:
    """The job's row, or 404 before any stream starts."""
    return await db.run(queries.job_row, job_id)


JobRow = Annotated[Row[Any], Depends(existing_job)]


def progress_of(data: events.ProgressData, epochs_total: int) -> Progress:
    """A progress event's numbers as `GET /jobs/{id}` shows them."""
    return progress_out(
        data.epochs_completed, epochs_total, data.steps_done, data.steps_total, data.eta_seconds, data.updated_at
    )


def rendered(rows: Sequence[Row[Any]], session: Session) -> list[ServerSentEvent]:
    """Events as the streams send them: each row's data, completed with what the API shows elsewhere."""
    if not rows:  # most polls: nothing new, and nothing more to read
        return []
    job_ids = {r.job_id for r in rows}
    specs = {
        j.id: JobSpec.model_validate(j.spec)
        for j in session.connection().execute(select(queries.JOBS).where(queries.JOBS.c.id.in_(job_ids)))
    }
    epochs: dict[tuple[int, int], Any] = {}
    for job_id in {r.job_id for r in rows if r.kind == Kind.EPOCH}:
        epochs |= {(job_id, e.epoch): e for e in queries.epoch_rows(session, job_id)}
    out = []
    for r in rows:
        data: Any = {"job_id": r.job_id, **r.data}
        if r.kind == Kind.PROGRESS:
            spec = specs.get(r.job_id)
            progress = progress_of(events.ProgressData.model_validate(r.data), spec.epochs if spec else 0)
            data = {"job_id": r.job_id, "progress": progress.model_dump()}
        elif r.kind == Kind.EPOCH:
            row = epochs.get((r.job_id, r.data["epoch"]))
            if row is None:  # replaced since by a retry of that epoch, whose own event follows
                continue
            data = epoch_out(epoch_record(row)).model_dump()
        elif r.kind == Kind.ARTIFACT:
            data["url"] = f"/jobs/{r.job_id}/artifacts/{r.data['name']}"
        out.append(ServerSentEvent(data=data, event=r.kind, id=str(r.id)))
    return out


@dataclass(frozen=True)
class Poll:
    """What one look at the events table found."""

    finished: bool  # the job (if one) has finished
    end: int | None  # the id of its `end` event, once it has one
    last: int | None  # the id of the last event read, None when there was none
    full: bool  # as many events as one look reads: more are waiting
    sent: list[ServerSentEvent]


def poll(session: Session, cursor: int, job_id: int | None) -> Poll:
    """The events after `cursor` (one job's, or every job's status and progress), rendered, and where the job is."""
    finished = job_id is not None and queries.job_row(session, job_id).status in FINISHED
    end = events.end_id(session, job_id) if finished and job_id is not None else None
    rows = events.after(session, cursor, job_id, () if job_id is not None else events.LIST_KINDS)
    last = rows[-1].id if rows else None
    return Poll(finished, end, last, len(rows) == events.BATCH, rendered(rows, session))


async def stream(db: Database, cursor: int, job_id: int | None) -> AsyncIterator[ServerSentEvent]:
    """Events after `cursor`: one job's, ending after its `end`; or (job_id None) every job's status and progress."""
    quiet = 0.0
    yield ServerSentEvent(comment="connected", retry=RETRY_MS)  # and how long a browser waits to reconnect

    finished_at: float | None = None
    while True:
        found = await db.run(poll, cursor, job_id)
        for event in found.sent:
            yield event
            # A resumed or continued job has an `end` per run: the stream ends at the last, once the job is finished.
            if event.event == Kind.END and found.end is not None and event.id == str(found.end):
                return
        if found.last is not None:
            cursor, quiet = found.last, 0.0
            if found.full:
                continue  # more are waiting
        elif found.finished:
            if found.end is not None and cursor >= found.end:
                return  # resumed after its end: nothing more will come
            # Finished without an `end` yet: its worker is keeping the last log lines; or died before it could.
            finished_at = finished_at or time.monotonic()
            if time.monotonic() - finished_at > END_GRACE_SECONDS:
                return
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ServerSentEvent(comment="keep-alive")


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse, responses=STREAM)
async def job_events(job: JobRow, db: ReadDatabaseDep, last_event_id: LastEventId) -> AsyncIterator[ServerSentEvent]:
    """The job's events as they happen: status, progress, epoch, artifact, log, then end (and the stream closes)."""
    async for event in stream(db, last_event_id or 0, job.id):
        yield event


@router.get("/events", response_class=EventSourceResponse, responses=STREAM)
async def all_events(db: ReadDatabaseDep, last_event_id: LastEventId) -> AsyncIterator[ServerSentEvent]:
    """Every job's status and progress changes from now on (or after `Last-Event-ID`), for a list of jobs."""
    cursor = last_event_id if last_event_id is not None else await db.run(events.last_id)
    async for event in stream(db, cursor, None):
        yield event


@router.get("/jobs/{job_id}/logs", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def job_logs(
    job: JobRow,
    db: ReadDatabaseDep,
    tail: Annotated[int, Query(ge=1, le=events.MAX_TAIL, description="How many of the last lines.")] = 200,
) -> Response:
    """The worker's log lines for this job (claim, start, epochs, warnings, errors with tracebacks), oldest first."""
    lines = await db.run(events.log_lines, job.id, tail)
    return Response("".join(f"{line}\n" for line in lines), media_type="text/plain; charset=utf-8")
