"""Waking idle workers when a job is queued: PostgreSQL's LISTEN/NOTIFY, with polling as the fallback.

Every move of a job into `queued` (`service.jobs`: a new job, one handed back, one taken back from a dead worker)
sends a NOTIFY on CHANNEL in its own transaction, which Postgres delivers at commit, and only then. A worker process
keeps one connection that LISTENs and wakes its idle loop at once; while that connection is up, the loop also looks
at the queue every `interval` (at most IDLE_POLL_SECONDS), for what no notification announces: a lapsed lease to
reap, a job another worker can no longer take. Without the connection (SQLite, or Postgres away) it polls every
POLL_SECONDS as before. A notification reaches every listener of the database (all its schemas): at worst a
worker looks once for nothing.
"""

import logging
import threading
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from service.db import is_sqlite

log = logging.getLogger("service")

CHANNEL = "alexnet_jobs_queued"
# How often a listening worker still looks at the queue: lapsed leases are reaped by these looks (a lease is 60 s by
# default; half of it keeps the delay under one more lease), and 1,000 idle workers then cost the database about 33
# looks a second instead of 1,000.
IDLE_POLL_SECONDS = 30.0
# How long the listener waits to reconnect after losing its connection, and how often it checks for stopping.
RECONNECT_SECONDS = 1.0


def notify_queued(session: Session) -> None:
    """Tell listening workers, once this transaction commits, that a job is queued (nothing on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Wakeups:
    """One LISTEN connection for a process, waking every thread that `wait`s in it; `start` it, `stop` it at the end.

    A wake-up is a count (`seen`): a thread takes the count before it looks at the queue and waits for a later one,
    so a job queued between its look and its wait still wakes it.
    """

    def __init__(self, database_url: str) -> None:
        self.postgres = not is_sqlite(database_url)
        self.conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.listening = False
        self._count = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin listening (on Postgres; elsewhere there is nothing to listen to)."""
        if self.postgres and self._thread is None:
            self._thread = threading.Thread(target=self._listen, name="queue-wakeups", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop listening, and wake every waiting thread."""
        self._stopping.set()
        self.poke()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def interval(self, poll_seconds: float, lease_seconds: float) -> float:
        """How long an idle worker may wait before it looks again: long while notifications wake it, else the poll."""
        if not self.listening:
            return poll_seconds
        return max(poll_seconds, min(IDLE_POLL_SECONDS, lease_seconds / 2))

    def seen(self) -> int:
        """The wake-ups so far: take it before looking at the queue, and hand it to `wait`."""
        with self._changed:
            return self._count

    def wait(self, timeout: float, stopping: threading.Event | None = None, since: int | None = None) -> None:
        """Return after a wake-up later than `since` (default: now), once `stopping` is set and poked, or after
        `timeout` seconds."""
        with self._changed:
            start = self._count if since is None else since
            self._changed.wait_for(
                lambda: self._count != start or (stopping is not None and stopping.is_set()), timeout
            )

    def poke(self) -> None:
        """Wake every waiting thread (a notification, a reconnection, or someone stopping)."""
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, **_KEEPALIVE) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    self.poke()  # a job queued while nobody listened: look once now
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=RECONNECT_SECONDS):
                            self.poke()
            except psycopg.Error as exc:
                if self.listening:
                    log.warning("queue wake-ups lost their connection, polling until it is back: %s", exc)
            finally:
                self.listening = False
            self._stopping.wait(RECONNECT_SECONDS)


# As `service.db.make_engine` sets them: a silent network breaks the connection instead of leaving it waiting.
_KEEPALIVE: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}
