"""Liveness: the database, the queue and the workers; answered without a token."""

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from service import queries
from service.api.deps import ReadDatabaseDep, SettingsDep
from service.api.presenter import json_response
from service.api.schemas import ErrorBody, Health, WorkerOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": ErrorBody}})
async def health(db: ReadDatabaseDep, settings: SettingsDep) -> Response:
    """Liveness, the database, the queue depth and the workers that heartbeated recently; `degraded` with the
    reasons when some worker cannot take jobs (its disk is full)."""

    def read(session: Session) -> Health:
        session.execute(text("SELECT 1"))
        workers = [
            WorkerOut.model_validate(w, from_attributes=True)
            for w in queries.live_workers(session, settings.worker_alive_seconds)
        ]
        problems = [f"worker {w.id}: {w.problem}" for w in workers if w.problem]
        status = "degraded" if problems else "ok"
        return Health(
            status=status, database="ok", queue=queries.queue_counts(session), workers=workers, problems=problems
        )

    return json_response(await db.run(read))
