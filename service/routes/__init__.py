"""The HTTP endpoints, one module per resource; each route is a thin shell around `service.jobs` and `queries`."""

from fastapi import APIRouter, Depends

from service.deps import require_token
from service.routes import files, health, jobs
from service.routes.presenter import ERRORS

# /health and the docs answer without a token; everything else needs one when API_TOKEN is set.
public = APIRouter()
public.include_router(health.router)

router = APIRouter(dependencies=[Depends(require_token)], responses=ERRORS)
router.include_router(jobs.router)
router.include_router(files.router)
