"""The FastAPI application factory: settings in, app out, every error in one JSON shape."""

import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import images
from service.api.deps import Database, require_token
from service.api.monitoring import Monitor, RequestMetrics
from service.api.predictor import Predictor
from service.api.presenter import ERRORS
from service.api.renderer import Renderer
from service.api.routes import PROTECTED, PUBLIC
from service.config import Settings, get_settings
from service.db import is_connection_error, is_sqlite, make_engine, make_sessionmaker
from service.errors import DatabaseUnavailable, ServiceError, error_body
from service.storage import make_store

log = logging.getLogger("service")
# Files the API serves as they are: Swagger UI's and ReDoc's pinned assets.
STATIC = Path(__file__).resolve().parent / "static"

# An image upload: the image (images.MAX_BYTES, checked by the route) and room for the multipart framing around it.
PREDICT_PATH = re.compile(r"/jobs/[^/]+/(?:predict|activations|explain)(?:\.png)?")
PREDICT_BODY_BYTES = images.MAX_BYTES + 64 * 1024

# Swagger UI and ReDoc group the operations under these, in this order.
TAGS = [
    {"name": "jobs", "description": "Submit, list, read, cancel and delete training jobs."},
    {"name": "metrics", "description": "Per-epoch and per-step numbers, as JSON or CSV, and the confusion counts."},
    {"name": "pictures", "description": "Kernels at any epoch and across epochs, confusion, mistakes, weight change."},
    {"name": "files", "description": "The curves and every file a job published (weights.pt, metrics.csv, …)."},
    {"name": "predict", "description": "What a trained job's network makes of an image."},
    {"name": "inside", "description": "Activations, where the network looked (Grad-CAM), what excites a filter."},
    {"name": "sweeps", "description": "A grid of specs queued as jobs, and its leaderboard."},
    {"name": "compare", "description": "Several jobs side by side."},
    {"name": "events", "description": "Live streams of what happens to jobs, and their logs."},
    {"name": "health", "description": "Is the service up: database, queue, workers."},
    {"name": "monitoring", "description": "Prometheus metrics."},
    {"name": "session", "description": "The dashboard's sign-in."},
]

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, whether or not they declare a Content-Length.

    Paths matching one of `larger`'s patterns have that pattern's limit instead (image uploads).
    """

    def __init__(self, app: ASGIApp, limit: int, larger: Sequence[tuple[re.Pattern[str], int]] = ()) -> None:
        self.app, self.limit, self.larger = app, limit, larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next((n for pattern, n in self.larger if pattern.fullmatch(scope["path"])), self.limit)
        too_large = _error(413, "payload_too_large", f"request body over {limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await too_large(scope, receive, send)
            return
        # Job specs are tiny, images a few MB: read the whole body (up to the limit) before the app sees it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await too_large(scope, receive, send)
                return
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _allowed_methods(request: Request) -> str:
    """Every method served at the request's path; the router's own 405 names only the first route's (POST /jobs)."""
    methods: set[str] = set()
    routes = [route for r in (*PUBLIC, *PROTECTED) for route in r.routes]
    for route in (*request.app.router.routes, *routes):
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API around `settings` (the environment's by default)."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, settings.db_timeout_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.renderer.close()
        await app.state.predictor.close()
        engine.dispose()

    app = FastAPI(
        title="alexnet-jobs",
        version="0.1.0",
        summary="Train AlexNet on CIFAR-10 as jobs and watch them learn: metrics, curves, kernels at any epoch.",
        lifespan=lifespan,
        docs_url=None,  # served from the app's own copies instead of a CDN: see service/api/routes/docs.py
        redoc_url=None,
        openapi_tags=TAGS,
    )
    app.state.settings = settings
    timeout = settings.db_timeout_seconds
    app.state.database = Database(make_sessionmaker(engine), timeout=timeout)
    # SQLite reads in WAL mode never wait for the writer and take ~0.2 ms: on the event loop they cost less than
    # the hop to a worker thread. Anything over a network (Postgres) keeps the hop, so a slow server stalls no loop.
    read_inline = is_sqlite(settings.database_url)
    app.state.read_database = Database(make_sessionmaker(engine, read_only=True), inline=read_inline, timeout=timeout)
    app.state.store = make_store(settings)
    app.state.renderer = Renderer(settings.cache_dir)
    app.state.monitor = Monitor()
    app.state.predictor = Predictor()

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return _error(exc.status_code, exc.code, exc.message, exc.details, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", "the request is not valid; see details", _validation_details(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # RFC 9110: a 405 lists every method the resource supports
            headers["Allow"] = _allowed_methods(request)
        return _error(exc.status_code, code, str(exc.detail), headers=headers)

    async def _database(exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        away = DatabaseUnavailable("the database is unavailable; try again shortly")
        return _error(away.status_code, away.code, away.message, headers=away.headers)

    @app.exception_handler(DBAPIError)
    async def _dbapi(_: Request, exc: DBAPIError) -> JSONResponse:
        if is_connection_error(exc):
            return await _database(exc)
        return await _unexpected(_, exc)

    @app.exception_handler(PoolTimeout)
    async def _pool(_: Request, exc: PoolTimeout) -> JSONResponse:
        return await _database(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal_error", "an unexpected error occurred")

    # Swagger UI's and ReDoc's assets only: the dashboard's are served by its own route, with its CSP.
    app.mount("/static/docs", StaticFiles(directory=STATIC / "docs", follow_symlink=False), name="static")
    for router in PUBLIC:
        app.include_router(router)
    # Without a token there is no authentication, and the OpenAPI document declares none (no 401s either).
    guard = [Depends(require_token)] if settings.api_token else []
    documented = ERRORS if settings.api_token else {code: r for code, r in ERRORS.items() if code != 401}
    for router in PROTECTED:
        app.include_router(router, dependencies=guard, responses=documented)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, larger=[(PREDICT_PATH, PREDICT_BODY_BYTES)])
    app.add_middleware(RequestMetrics, monitor=app.state.monitor)  # outermost: counts 413s and 500s too
    return app
