"""The FastAPI application factory: settings in, app out, every error in one JSON shape."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from service.api import images, openapi
from service.api.auth import signed_in
from service.api.body_limit import BodyLimit
from service.api.counts import Counts
from service.api.deps import Database
from service.api.guard import Guard
from service.api.handlers import install_error_handlers
from service.api.hub import EventHub
from service.api.monitoring import Monitor, RequestMetrics
from service.api.predictor import Predictor
from service.api.presenter import ERRORS
from service.api.renderer import Renderer
from service.api.routes import PROTECTED, PUBLIC
from service.api.throttle import Throttle
from service.config import Settings, get_settings
from service.db import is_sqlite, make_engine, make_sessionmaker
from service.storage import make_store

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
    {"name": "users", "description": "People, their roles, tokens and quotas (admins only)."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API around `settings` (the environment's by default)."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, settings.db_timeout_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.hub.close()
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
    app.state.hub = EventHub(app.state.read_database)
    app.state.counts = Counts()
    app.state.store = make_store(settings)
    app.state.renderer = Renderer(settings.cache_dir)
    app.state.monitor = Monitor()
    app.state.predictor = Predictor()
    app.state.throttle = Throttle()  # wrong sign-ins, by address

    install_error_handlers(app)
    # Swagger UI's and ReDoc's assets only: the dashboard's are served by its own route, with its CSP.
    app.mount("/static/docs", StaticFiles(directory=STATIC / "docs", follow_symlink=False), name="static")
    for router in PUBLIC:
        app.include_router(router)
    # Who asks is checked on every request: users may be added while the API runs (until then, without API_TOKEN,
    # everyone is let in, as before there were users).
    for router in PROTECTED:
        app.include_router(router, dependencies=[Depends(signed_in)], responses=ERRORS)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, larger=[(PREDICT_PATH, PREDICT_BODY_BYTES)])
    app.add_middleware(Guard, settings=settings)  # unknown hosts, other origins' writes: before the body is read
    app.add_middleware(RequestMetrics, monitor=app.state.monitor)  # outermost: counts 413s and 500s too
    openapi.install(app, open_until_users=not settings.api_token)  # valid for the OpenAPI version it declares
    return app
