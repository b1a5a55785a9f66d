"""Signing in to the dashboard: a token exchanged for a server-side session, so the token stays out of URLs and logs.

The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it); it holds a random
id of this sign-in alone, which signing out, its expiry, or rotating or revoking the token ends (`service.users.
sessions`). The API still takes `Authorization: Bearer` from curl and scripts.
"""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from service import users
from service.api.auth import SESSION_COOKIE, identify
from service.api.deps import JSON_BODY, DatabaseDep, ReadDatabaseDep, SettingsDep
from service.api.presenter import errors
from service.errors import Unauthorized
from service.users import Person, sessions

router = APIRouter(prefix="/session", tags=["session"])

SIGN_IN_ERRORS = errors(
    (400, "The body could not be read"),
    (401, "Wrong token"),
    (413, "Request body too large"),
    (415, "The body was sent as something other than JSON"),
)


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=1000, description="Your token, or the server's API_TOKEN.")


class SessionOut(BaseModel):
    signed_in: bool = Field(description="Whether this browser's requests are accepted.")
    token_required: bool = Field(description="Whether the server asks who you are at all (it has users or API_TOKEN).")
    name: str | None = Field(None, description="Who is signed in; null when nobody is, or the server is open.")
    role: users.Role | None = Field(None, description="What they may do: admin, member (their own jobs) or viewer.")


def _state(session: Session, cookie: str | None, api_token: str) -> SessionOut:
    found = identify(session, None, cookie, api_token)
    if isinstance(found, str):
        return SessionOut(signed_in=False, token_required=True)
    return SessionOut(signed_in=True, token_required=found.name is not None, name=found.name, role=found.role)


def _opened(session: Session, token: str, api_token: str, hours: float) -> tuple[Person, str] | None:
    """The person and a new session's cookie; no cookie on a service that asks nobody who they are."""
    if not api_token and not users.any_users(session):
        return users.OPEN, ""
    found = users.by_token(session, token, api_token)
    return None if found is None else (found, sessions.open_session(session, users.digest(token), hours))


@router.get("")
async def get_session(request: Request, settings: SettingsDep, db: ReadDatabaseDep) -> SessionOut:
    """Whether this browser is signed in, as whom, and whether signing in is needed at all."""
    return await db.run(_state, request.cookies.get(SESSION_COOKIE), settings.api_token)


@router.post("", status_code=204, responses=SIGN_IN_ERRORS, dependencies=JSON_BODY)
async def sign_in(
    body: Annotated[SignIn, Body()], request: Request, settings: SettingsDep, db: DatabaseDep
) -> Response:
    """Sign this browser in with a token: a cookie the API accepts in its place until sign-out (12 hours at most).
    Repeated wrong tokens from one address are answered more and more slowly."""
    address = request.client.host if request.client else "unknown"
    throttle = request.app.state.throttle
    await asyncio.sleep(throttle.delay(address))
    opened = await db.run(_opened, body.token, settings.api_token, settings.session_hours)
    if opened is None:
        throttle.failed(address)
        raise Unauthorized("wrong token (or one that was rotated or revoked)")
    throttle.succeeded(address)
    response = Response(status_code=204)
    if not opened[1]:
        return response
    response.set_cookie(
        SESSION_COOKIE,
        opened[1],
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.delete("", status_code=204)
async def sign_out(request: Request, db: DatabaseDep) -> Response:
    """Sign this browser out: its sign-in ends on the server too, so a copy of the cookie is worth nothing."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await db.run(sessions.end_session, cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
