"""Request-scoped dependencies: the settings, the artifact store, the database, the optional token check.

They are all `async` and do no I/O, so none costs a hop to a worker thread (FastAPI runs each sync dependency,
and a sync route, in the thread pool): a route's database work runs as one unit of work in at most one hop
(`Database.run`). With sync dependencies and routes, those hops were half of what a one-row read cost.
"""

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.config import Settings
from service.db import transaction
from service.errors import Unauthorized
from service.renderer import Renderer
from service.storage import ArtifactStore

T = TypeVar("T")


class Database:
    """Runs a route's database work in one short transaction, committed (or rolled back) before it returns.

    `inline` runs it on the event loop itself, for work that never waits (reads of a local SQLite file).
    """

    def __init__(self, sessions: sessionmaker[Session], inline: bool = False) -> None:
        self.sessions = sessions
        self.inline = inline

    async def run(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in a worker thread (or inline), inside one transaction; its result, or what it raised.

        The commit happens before the route responds, so a client that got 201 can read its job at once, and a
        failed commit is an error response, never a lost 201.
        """
        if self.inline:
            return self._unit_of_work(work)
        return await run_in_threadpool(self._unit_of_work, work)

    def _unit_of_work(self, work: Callable[[Session], T]) -> T:
        with transaction(self.sessions) as session:
            return work(session)


def _from_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that answers what `create_app` put on the app's state under `name`."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    return get


SettingsDep = Annotated[Settings, Depends(_from_state("settings"))]
StoreDep = Annotated[ArtifactStore, Depends(_from_state("store"))]
RendererDep = Annotated[Renderer, Depends(_from_state("renderer"))]
# Routes that write: their work takes SQLite's write lock (or Postgres row locks) as it needs.
DatabaseDep = Annotated[Database, Depends(_from_state("database"))]
# Routes that only read: on SQLite such a transaction never waits for the write lock.
ReadDatabaseDep = Annotated[Database, Depends(_from_state("read_database"))]

_bearer = HTTPBearer(auto_error=False, description="Needed only when the server sets API_TOKEN.")


async def require_token(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """When API_TOKEN is set, demand `Authorization: Bearer <API_TOKEN>` (compared in constant time)."""
    if not settings.api_token:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), settings.api_token.encode()):
        raise Unauthorized("missing or wrong bearer token")
