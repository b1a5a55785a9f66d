"""Liveness: the database, the queue and the workers; answered without a token."""

from fastapi import APIRouter
from sqlalchemy import text

from service import queries
from service.deps import ReadSessionDep, SettingsDep
from service.schemas import ErrorBody, Health, WorkerOut

router = APIRouter()


@router.get("/health", response_model=Health, responses={503: {"model": ErrorBody}})
def health(session: ReadSessionDep, settings: SettingsDep) -> Health:
    """Liveness, the database, the queue depth and the workers that heartbeated recently."""
    session.execute(text("SELECT 1"))
    workers = [
        WorkerOut.model_validate(w, from_attributes=True)
        for w in queries.live_workers(session, settings.worker_alive_seconds)
    ]
    return Health(status="ok", database="ok", queue=queries.queue_counts(session), workers=workers)
