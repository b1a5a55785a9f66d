"""The worker's database writes: a broken connection is the database's trouble, not the job's.

A write that fails because the database could not be reached (refused, reset, timed out) is retried with
backoff on a fresh connection until it goes through, or until the caller says to give up. Each write is
idempotent (a fenced update, a row replaced), so a retry after an ambiguous commit changes nothing.

Each worker also remembers when its database last failed (`Outages`, one per session factory): a reaper that has
just regained the database waits one lease before taking back expired jobs, so a job's owner, which lost the
database at the same moment, renews its lease first and the job goes on without losing an attempt.
"""

import logging
import math
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from service.db import is_connection_error, transaction

log = logging.getLogger("worker")
T = TypeVar("T")

# Backoff between retries: from a blink (a reset connection reconnects at once) to one retry every few seconds
# during an outage, quick enough to be training again within seconds of the database's return.
FIRST_DELAY = 0.2
MAX_DELAY = 4.0


class DatabaseAway(Exception):
    """A write was given up (the caller asked to stop) while the database was unreachable."""


class Outages:
    """When this worker's database last failed or stalled (monotonic seconds)."""

    def __init__(self) -> None:
        self.last = -math.inf

    def note(self) -> None:
        self.last = time.monotonic()

    def calm_for(self) -> float:
        """Seconds since the database last failed this worker."""
        return time.monotonic() - self.last


_outages: "weakref.WeakKeyDictionary[sessionmaker[Session], Outages]" = weakref.WeakKeyDictionary()


def outages(sessions: sessionmaker[Session]) -> Outages:
    """The outage record shared by everything that writes through `sessions`."""
    return _outages.setdefault(sessions, Outages())


def first_line(exc: BaseException) -> str:
    """A database error's gist: drivers append the SQL and a link after the first line."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write(
    sessions: sessionmaker[Session],
    work: Callable[[Session], T],
    what: str,
    give_up: Callable[[], bool] = lambda: False,
    slow: float = 5.0,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
) -> T:
    """`work(session)` in one transaction, retried while the database is unreachable; its result.

    What `work` raises for any other reason (LeaseLost, a constraint) is raised at once. When `give_up()` turns
    true during an outage, raises DatabaseAway. A transaction slower than `slow` seconds counts as an outage for
    the reaper's grace, since a stalled connection fails nothing but delays everyone. The retries are told in
    `logger` (a job's `JobLogger`, for a write about a job: the lines then go into the job's log).
    """
    delay, failures = FIRST_DELAY, 0
    while True:
        started = time.monotonic()
        try:
            with transaction(sessions) as session:
                result = work(session)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            outages(sessions).note()
            failures += 1
            if give_up():
                raise DatabaseAway(f"{what}: database unavailable ({first_line(exc)})") from exc
            # The first failure and then every tenth: an outage of minutes does not flood the log.
            if failures == 1 or failures % 10 == 0:
                logger.warning(
                    "%s: database unavailable (%s); retrying every %.1f s at most", what, first_line(exc), MAX_DELAY
                )
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
            continue
        if time.monotonic() - started > slow:
            outages(sessions).note()
        if failures:
            logger.info("%s: done after %d failed attempt(s); the database is back", what, failures)
        return result
