"""Who is asking: a bearer token, or the dashboard's sign-in cookie, resolved to a person with a role.

Every protected route depends on `signed_in`, which also refuses a viewer anything but reading (a method other than
GET or HEAD), so no write route can forget the role check; routes that change one job or sweep check its owner too
(`service.users.access`). Without API_TOKEN and with nobody ever added, the service stays open, as it always was.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service import users
from service.api.deps import ReadDatabaseDep, SettingsDep
from service.errors import Unauthorized
from service.users import Person, access, sessions

# The dashboard's sign-in cookie (see service.api.routes.session): EventSource cannot send an Authorization header.
SESSION_COOKIE = "alexnet_jobs_session"
SAFE_METHODS = frozenset({"GET", "HEAD"})

_bearer = HTTPBearer(
    auto_error=False,
    description="A user's token (`python -m service.users add`), or API_TOKEN: needed once either exists.",
)


def identify(session: Session, token: str | None, cookie: str | None, api_token: str) -> Person | str:
    """The person a request's token (or else its cookie) names; what is wrong with it otherwise. A service with
    neither API_TOKEN nor users lets everyone in, whatever they send, as it did before there were users."""
    found = users.by_token(session, token, api_token) if token else None
    if found is None and cookie and not token:
        found = sessions.person(session, cookie, api_token)
    if found is not None:
        return found
    if not api_token and not users.any_users(session):
        return users.OPEN
    if token:
        return "the bearer token is not valid (wrong, rotated or revoked)"
    if cookie:
        return "the dashboard sign-in has ended (signed out, expired, or its token rotated or revoked); sign in again"
    return "sign-in needed: send 'Authorization: Bearer <token>', or sign in on the dashboard"


async def person(
    request: Request,
    settings: SettingsDep,
    db: ReadDatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Person:
    """Who is asking; 401 naming what is missing when nobody is."""
    token = credentials.credentials if credentials else None
    found = await db.run(identify, token, request.cookies.get(SESSION_COOKIE), settings.api_token)
    if isinstance(found, str):
        raise Unauthorized(found)
    return found


PersonDep = Annotated[Person, Depends(person)]


async def signed_in(request: Request, who: PersonDep) -> None:
    """What every protected route depends on: someone is asking, and a viewer asks only to read."""
    if request.method not in SAFE_METHODS:
        access.require_write(who)


async def admin(who: PersonDep) -> None:
    """Only admins manage users."""
    access.require_admin(who)
