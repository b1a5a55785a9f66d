"""Every error in one JSON shape: the service's own, FastAPI's validation errors, Starlette's HTTP errors, a database
that is away, and anything unexpected (a 500 that says nothing of its insides)."""

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from service.api.routes import PROTECTED, PUBLIC
from service.db import is_connection_error
from service.errors import DatabaseUnavailable, Detail, ServiceError, error_body

log = logging.getLogger("service")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _error(
    status: int, code: str, message: str, details: list[Detail] | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method served at the request's path; the router's own 405 names only the first route's (POST /jobs)."""
    methods: set[str] = set()
    routes = [route for r in (*PUBLIC, *PROTECTED) for route in r.routes]
    for route in (*request.app.router.routes, *routes):
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _validation_details(exc: RequestValidationError) -> list[Detail]:
    return [Detail(loc=list(e.get("loc", ())), msg=e.get("msg", ""), type=e.get("type", "")) for e in exc.errors()]


async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return _error(exc.status_code, exc.code, exc.message, exc.details, headers=exc.headers)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(422, "invalid_request", "the request is not valid; see details", _validation_details(exc))


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # RFC 9110: a 405 lists every method the resource supports
        headers["Allow"] = _allowed_methods(request)
    return _error(exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail), headers=headers)


async def _database_away(_: Request, exc: Exception) -> JSONResponse:
    """A database that could not be reached, broke the connection, or left no pooled connection free: 503."""
    if isinstance(exc, DBAPIError) and not is_connection_error(exc):
        return await _unexpected(_, exc)
    log.error("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    away = DatabaseUnavailable("the database is unavailable; try again shortly")
    return _error(away.status_code, away.code, away.message, headers=away.headers)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _error(500, "internal_error", "an unexpected error occurred")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error `app` meets in the one shape (`service.errors.error_body`)."""
    app.exception_handler(ServiceError)(_service_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(StarletteHTTPException)(_http)
    app.exception_handler(DBAPIError)(_database_away)
    app.exception_handler(PoolTimeout)(_database_away)
    app.exception_handler(Exception)(_unexpected)
