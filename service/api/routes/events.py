"""Live: a job's event stream, every job's status and progress, and a job's log.

New events reach the streams from the process's one reader of `job_events` (`service.api.hub`); a stream reads the
table itself only to catch up, in short read transactions, holding no session in between. An event's id is its
row's, so a browser that reconnects with `Last-Event-ID` misses nothing and repeats nothing.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import Row
from sqlalchemy.orm import Session
from starlette.types import Message, Receive, Scope, Send

from service import events, queries
from service.api.deps import Database, JobIdPath, ReadDatabaseDep
from service.api.hub import EventHub, rendered
from service.api.presenter import Responses
from service.events import Kind
from service.models import FINISHED


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

# How long a one-job stream waits on the process's reader before it reads the table itself: a job whose worker died
# between its final status and its `end` must still end its streams.
CHECK_SECONDS = 5.0
# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0
# How long a finished job's stream waits for the `end` its worker sends after the last log lines.
END_GRACE_SECONDS = 10.0
# How long a browser waits before reconnecting a dropped stream.
RETRY_MS = 2000
STREAM: Responses = {200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}}

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


async def the_hub(request: Request) -> EventHub:
    """The process's one reader of new events (`create_app` made it)."""
    hub: EventHub = request.app.state.hub
    return hub


HubDep = Annotated[EventHub, Depends(the_hub)]


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
    return Poll(finished, end, last, len(rows) == events.BATCH, [e for _, e in rendered(rows, session)])


class Ended(Exception):
    """The stream has sent all there is: its job's `end`, or the job finished without one."""


@dataclass
class Reader:
    """One stream's place: the last event it sent, and since when its finished job has had no `end`."""

    db: Database
    job_id: int | None
    cursor: int
    finished_at: float | None = None

    async def catch_up(self) -> AsyncIterator[ServerSentEvent]:
        """Read the table from the cursor until nothing more is there; Ended once the job's stream is complete."""
        while True:
            found = await self.db.run(poll, self.cursor, self.job_id)
            for event in found.sent:
                yield event
                # A resumed or continued job has an `end` per run: its stream ends at the last, once it is finished.
                if event.event == Kind.END and found.end is not None and event.id == str(found.end):
                    raise Ended
            if found.last is not None:
                self.cursor = found.last
                if found.full:
                    continue  # more are waiting
                return
            if found.finished:
                if found.end is not None and self.cursor >= found.end:
                    raise Ended  # resumed after its end: nothing more will come
                # Finished without an `end` yet: its worker is keeping the last log lines; or died before it could.
                self.finished_at = self.finished_at or time.monotonic()
                if time.monotonic() - self.finished_at > END_GRACE_SECONDS:
                    raise Ended
            return


async def stream(db: Database, hub: EventHub, cursor: int, job_id: int | None) -> AsyncIterator[ServerSentEvent]:
    """Events after `cursor`: one job's, ending after its `end`; or (job_id None) every job's status and progress.

    Subscribed to the process's one reader first, then caught up from the table: what the reader delivers meanwhile
    is sent once (events are sent in id order, never one at or below the cursor). A one-job stream still reads the
    table itself when nothing has come for CHECK_SECONDS, to see its job finished without an `end`.
    """
    yield ServerSentEvent(comment="connected", retry=RETRY_MS)  # and how long a browser waits to reconnect
    subscriber = await hub.subscribe(job_id)
    reader, quiet = Reader(db, job_id, cursor), 0.0
    try:
        async for event in reader.catch_up():
            yield event
        while True:
            if subscriber.behind:  # dropped events: drain, then read them from the table
                subscriber.behind = False
                while not subscriber.queue.empty():
                    subscriber.queue.get_nowait()
                async for event in reader.catch_up():
                    yield event
            try:
                event_id, event = await asyncio.wait_for(subscriber.queue.get(), CHECK_SECONDS)
            except TimeoutError:
                quiet += CHECK_SECONDS
                if job_id is not None:
                    async for event in reader.catch_up():
                        quiet = 0.0
                        yield event
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ServerSentEvent(comment="keep-alive")
                continue
            if event_id <= reader.cursor:
                continue  # sent already, from the table
            reader.cursor, quiet = event_id, 0.0
            yield event
            if event.event == Kind.END:  # the table says whether it is the last: Ended once the job is finished
                async for event in reader.catch_up():
                    yield event
    except Ended:
        return
    finally:
        hub.unsubscribe(subscriber)


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse, responses=STREAM)
async def job_events(
    job: JobRow, db: ReadDatabaseDep, hub: HubDep, last_event_id: LastEventId
) -> AsyncIterator[ServerSentEvent]:
    """The job's events as they happen: status, progress, epoch, artifact, log, then end (and the stream closes)."""
    async for event in stream(db, hub, last_event_id or 0, job.id):
        yield event


@router.get("/events", response_class=EventSourceResponse, responses=STREAM)
async def all_events(db: ReadDatabaseDep, hub: HubDep, last_event_id: LastEventId) -> AsyncIterator[ServerSentEvent]:
    """Every job's status and progress changes from now on (or after `Last-Event-ID`), for a list of jobs."""
    cursor = last_event_id if last_event_id is not None else await db.run(events.last_id)
    async for event in stream(db, hub, cursor, None):
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
