"""Signing in to the dashboard: the API token exchanged for a cookie, so it stays out of URLs and access logs.

The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it); it holds a digest
keyed by the token, never the token. The API still takes `Authorization: Bearer` from curl and scripts.
"""

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from service.api.deps import JSON_BODY, SESSION_COOKIE, SettingsDep, session_value, signed_in
from service.api.schemas import ErrorBody
from service.errors import Unauthorized

router = APIRouter(prefix="/session", tags=["session"])

SIGN_IN_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "The body could not be read"),
        (401, "Wrong token"),
        (413, "Request body too large"),
        (415, "The body was sent as something other than JSON"),
    )
}
# A working day: long enough not to nag, short enough that a forgotten browser is signed out by tomorrow.
COOKIE_SECONDS = 12 * 3600


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=1000, description="The server's API_TOKEN.")


class SessionOut(BaseModel):
    signed_in: bool = Field(description="Whether this browser's requests are accepted.")
    token_required: bool = Field(description="Whether the server asks for a token at all (API_TOKEN is set).")


@router.get("")
async def get_session(request: Request, settings: SettingsDep) -> SessionOut:
    """Whether this browser is signed in, and whether signing in is needed at all."""
    required = bool(settings.api_token)
    ok = not required or signed_in(request, settings.api_token)
    return SessionOut(signed_in=ok, token_required=required)


@router.post("", status_code=204, responses=SIGN_IN_ERRORS, dependencies=JSON_BODY)
async def sign_in(body: Annotated[SignIn, Body()], request: Request, settings: SettingsDep) -> Response:
    """Sign this browser in with the API token: a cookie that the API accepts in place of the bearer token."""
    if settings.api_token and not secrets.compare_digest(body.token.encode(), settings.api_token.encode()):
        raise Unauthorized("wrong token")
    response = Response(status_code=204)
    if settings.api_token:
        response.set_cookie(
            SESSION_COOKIE,
            session_value(settings.api_token),
            max_age=COOKIE_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


@router.delete("", status_code=204)
async def sign_out() -> Response:
    """Sign this browser out."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
