"""One reader of `job_events` per API process, fanning each new event out to every open stream that wants it.

Each open stream used to read the table itself every half second: 200 dashboard tabs were 400 queries a second
whatever happened. The hub reads once for all of them, renders only the rows some stream wants, once each, and hands
each to the streams that want it. A stream still reads the table itself to catch up (after `Last-Event-ID`, or
when it fell too far behind: a client reading slower than events come), and now and then to see that its job has
ended without an `end` (`service.api.routes.events`).
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi.sse import ServerSentEvent
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from service import events, queries
from service.api.deps import Database
from service.api.presenter import epoch_out, epoch_record, progress_out
from service.api.schemas import Progress
from service.events import Kind
from service.spec import JobSpec

log = logging.getLogger("service")

# How often the one reader looks for new events: one query for every stream of the process, so it can look often.
POLL_SECONDS = 0.25
# Events one stream may have waiting; past it, the stream catches up from the table instead (no memory grows
# without bound for a client that stopped reading).
BACKLOG = 5_000
# After a failed read (the database away), wait this long before the next.
RETRY_SECONDS = 1.0


def progress_of(data: events.ProgressData, epochs_total: int) -> Progress:
    """A progress event's numbers as `GET /jobs/{id}` shows them."""
    return progress_out(
        data.epochs_completed, epochs_total, data.steps_done, data.steps_total, data.eta_seconds, data.updated_at
    )


def rendered(rows: Sequence[Row[Any]], session: Session) -> list[tuple[Row[Any], ServerSentEvent]]:
    """Events as the streams send them, each with its row: the row's data completed with what the API shows
    elsewhere. An epoch replaced since by a retry of it is left out (its own event follows)."""
    if not rows:
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
            if row is None:
                continue
            data = epoch_out(epoch_record(row)).model_dump()
        elif r.kind == Kind.ARTIFACT:
            data["url"] = f"/jobs/{r.job_id}/artifacts/{r.data['name']}"
        out.append((r, ServerSentEvent(data=data, event=r.kind, id=str(r.id))))
    return out


@dataclass(eq=False)
class Subscriber:
    """One open stream: one job's events (`job_id`), or (None) every job's status and progress."""

    job_id: int | None
    queue: asyncio.Queue[tuple[int, ServerSentEvent]] = field(default_factory=lambda: asyncio.Queue(BACKLOG))
    behind: bool = False  # events were dropped: it must catch up from the table

    def wants(self, job_id: int, kind: str) -> bool:
        return job_id == self.job_id if self.job_id is not None else kind in events.LIST_KINDS


@dataclass(frozen=True)
class Wanted:
    """What the open streams want, as the reader looks: these jobs' events, and every job's status and progress?"""

    jobs: frozenset[int]
    lists: bool

    def __call__(self, row: Row[Any]) -> bool:
        return row.job_id in self.jobs or (self.lists and row.kind in events.LIST_KINDS)


def look(session: Session, cursor: int, wanted: Wanted) -> tuple[int | None, bool, list[tuple[Row[Any], Any]]]:
    """The events after `cursor`: the last id read (None for none), whether more wait, the wanted ones rendered."""
    rows = events.after(session, cursor)
    return (rows[-1].id if rows else None), len(rows) == events.BATCH, rendered([r for r in rows if wanted(r)], session)


class EventHub:
    """The process's one reader: runs while some stream is subscribed, from the newest event on."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.subscribers: set[Subscriber] = set()
        self.cursor: int | None = None  # the last event read; None while nobody listens
        self.task: asyncio.Task[None] | None = None

    async def subscribe(self, job_id: int | None) -> Subscriber:
        """A new stream's subscription: every event after the hub's position from now on reaches it."""
        if self.cursor is None:
            self.cursor = await self.db.run(events.last_id)
        subscriber = Subscriber(job_id)
        self.subscribers.add(subscriber)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._read(), name="event-hub")
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def _read(self) -> None:
        try:
            while self.subscribers and self.cursor is not None:
                wanted = Wanted(
                    frozenset(s.job_id for s in self.subscribers if s.job_id is not None),
                    any(s.job_id is None for s in self.subscribers),
                )
                try:
                    last, full, found = await self.db.run(look, self.cursor, wanted)
                except Exception as exc:  # the streams catch up from the table once it answers again
                    log.warning("event streams: reading new events failed, retrying: %s", exc)
                    for subscriber in self.subscribers:
                        subscriber.behind = True
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                self._deliver(found)
                if last is not None:
                    self.cursor = last
                if not full:
                    await asyncio.sleep(POLL_SECONDS)
        finally:
            if not self.subscribers:
                self.cursor = None  # the next stream starts it afresh from the newest event

    def _deliver(self, found: list[tuple[Row[Any], ServerSentEvent]]) -> None:
        for row, event in found:
            for subscriber in self.subscribers:
                if subscriber.behind or not subscriber.wants(row.job_id, row.kind):
                    continue
                try:
                    subscriber.queue.put_nowait((row.id, event))
                except asyncio.QueueFull:
                    subscriber.behind = True

    async def close(self) -> None:
        self.subscribers.clear()
        if self.task is not None:
            self.task.cancel()
