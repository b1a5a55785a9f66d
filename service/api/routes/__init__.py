"""The HTTP endpoints, one module per resource; each route is a thin shell around `service.jobs` and `queries`."""

from fastapi import APIRouter

from service.api.routes import (
    compare,
    docs,
    events,
    files,
    filters,
    health,
    history,
    inside,
    jobs,
    metrics,
    monitoring,
    predict,
    session,
    sweeps,
    turns,
    ui,
    users,
)

# /health, the docs, signing in and the dashboard's pages (which hold no data) answer without a token; the others
# need one when API_TOKEN is set.
PUBLIC: tuple[APIRouter, ...] = (health.router, docs.router, session.router, ui.router)
PROTECTED: tuple[APIRouter, ...] = (
    jobs.router,
    turns.router,
    metrics.router,
    history.router,
    files.router,
    sweeps.router,
    compare.router,
    predict.router,
    inside.router,
    filters.router,
    monitoring.router,
    events.router,
    users.router,
)
