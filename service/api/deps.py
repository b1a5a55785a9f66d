"""Request-scoped dependencies: the settings, the artifact store, the database (who is asking: `service.api.auth`).

They are all `async` and do no I/O, so none costs a hop to a worker thread (FastAPI runs each sync dependency,
and a sync route, in the thread pool): a route's database work runs as one unit of work in at most one hop
(`Database.run`). With sync dependencies and routes, those hops were half of what a one-row read cost.
"""

import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

import anyio
from fastapi import Depends, Header, Path, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from service import queries
from service.api.counts import Counts
from service.api.monitoring import Monitor
from service.api.renderer import Renderer
from service.config import Settings
from service.errors import DatabaseUnavailable, UnsupportedMediaType
from service.storage import ArtifactStore

T = TypeVar("T")
P = ParamSpec("P")


class Abandoned(Exception):
    """The request stopped waiting for this unit of work: it must not commit."""


class Database:
    """Runs a route's database work in one short transaction, committed (or rolled back) before it returns.

    `inline` runs it on the event loop itself, for work that never waits (reads of a local SQLite file). Otherwise
    it runs in a worker thread, and a database that has not finished it within `timeout` seconds (a stalled
    network, a lock held elsewhere) gets the client a 503 with Retry-After instead of a request that hangs.
    """

    def __init__(self, sessions: sessionmaker[Session], inline: bool = False, timeout: float = 5.0) -> None:
        self.sessions = sessions
        self.inline = inline
        self.timeout = timeout

    async def run(self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(session, *args, **kwargs)` in a worker thread (or inline), inside one transaction; its result, or
        what it raised.

        The commit happens before the route responds, so a client that got 201 can read its job at once, and a
        failed commit is an error response, never a lost 201. Work given up on after `timeout` rolls back when the
        database answers again rather than commit what the client was told failed.
        """
        abandoned = threading.Event()
        if self.inline:
            return self._unit_of_work(abandoned, work, *args, **kwargs)
        unit = functools.partial(self._unit_of_work, abandoned, work, *args, **kwargs)
        try:
            with anyio.fail_after(self.timeout):
                # Abandoned on timeout: the thread stays blocked on the socket, but the request answers now.
                return await anyio.to_thread.run_sync(unit, abandon_on_cancel=True)
        except TimeoutError:
            abandoned.set()
            raise DatabaseUnavailable(
                f"the database did not answer within {self.timeout:g} s; nothing was changed, try again shortly"
            ) from None

    def _unit_of_work(
        self, abandoned: threading.Event, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        with self.sessions() as session, session.begin():
            result = work(session, *args, **kwargs)
            if abandoned.is_set():
                raise Abandoned  # rolls back
            return result


def _from_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that answers what `create_app` put on the app's state under `name`."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    return get


# Any integer: one that names no job (0, negative, past the database's range) is a 404 like any other unknown id.
JobIdPath = Annotated[int, Path(description="The job's id, as `POST /jobs` answered it.")]
SweepIdPath = Annotated[int, Path(description="The sweep's id, as `POST /sweeps` answered it.")]
# The most items one page of a list (GET /jobs, GET /sweeps) returns.
MAX_PAGE = 100
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="How many items, at most.")]
PageOffset = Annotated[int, Query(ge=0, le=queries.MAX_ID, description="How many items to skip, newest first.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="Any string of yours: the request repeated with it and the same body answers with what the first "
        "one made, instead of queueing again; with another body it is a 409.",
    ),
]

SettingsDep = Annotated[Settings, Depends(_from_state("settings"))]
StoreDep = Annotated[ArtifactStore, Depends(_from_state("store"))]
RendererDep = Annotated[Renderer, Depends(_from_state("renderer"))]
MonitorDep = Annotated[Monitor, Depends(_from_state("monitor"))]
CountsDep = Annotated[Counts, Depends(_from_state("counts"))]
# Routes that write: their work takes SQLite's write lock (or Postgres row locks) as it needs.
DatabaseDep = Annotated[Database, Depends(_from_state("database"))]
# Routes that only read: on SQLite such a transaction never waits for the write lock.
ReadDatabaseDep = Annotated[Database, Depends(_from_state("read_database"))]


async def require_json(request: Request) -> None:
    """A request body, when there is one, must be declared JSON: `curl -d` without `-H 'Content-Type:
    application/json'` (the commonest mistake) sends a form, which would otherwise be refused as "not a valid
    dictionary". A request with no body needs no header (POST /jobs then queues the defaults)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if has_body and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"the body must be JSON sent with the header 'Content-Type: application/json', not {media or 'none'}; "
            "with curl: -H 'Content-Type: application/json' -d '{...}'"
        )


# What routes that take a JSON body declare, so that a body sent as a form gets 415 (see `require_json`).
JSON_BODY = [Depends(require_json)]
