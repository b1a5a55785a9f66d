"""Request-scoped dependencies: the settings, a session that commits at the end, the optional token check."""

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.config import Settings
from service.errors import Unauthorized
from service.storage import ArtifactStore


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


def get_session(request: Request) -> Iterator[Session]:
    """A session whose transaction commits when the route returns and rolls back if it raises."""
    with request.app.state.sessions() as session, session.begin():
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A session for routes that only read: on SQLite it never waits for the write lock."""
    with request.app.state.read_sessions() as session, session.begin():
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
# scope="function": commit before the response is sent (FastAPI's default for `yield` ends after it), so a
# client that got 201 can read its job at once, and a failed commit is an error response, not a lost 201.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="Needed only when the server sets API_TOKEN.")


def require_token(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """When API_TOKEN is set, demand `Authorization: Bearer <API_TOKEN>` (compared in constant time)."""
    if not settings.api_token:
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), settings.api_token.encode()):
        raise Unauthorized("missing or wrong bearer token")
