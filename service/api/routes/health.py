"""Liveness: the database, the queue and the workers; answered without a token."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from service import queries
from service.api.deps import ReadDatabaseDep, SettingsDep
from service.api.schemas import ErrorBody

router = APIRouter(tags=["health"])


class WorkerOut(BaseModel):
    id: str
    hostname: str
    pid: int
    device: str
    bf16_native: bool = Field(description="bf16 runs natively on this worker's device (else `bf16` jobs go elsewhere).")
    last_seen_at: datetime
    job_id: int | None
    problem: str | None = Field(None, description="Why this worker takes no jobs now (e.g. its disk is full).")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="`degraded`: up, but some workers cannot take jobs.")
    database: Literal["ok"]
    queue: dict[str, int]
    workers: list[WorkerOut]
    problems: list[str] = Field(description="What makes the service degraded, one line each; empty when ok.")


def checked(session: Session, alive_seconds: float) -> Health:
    """The database answered; the queue, and the workers seen within `alive_seconds` with what keeps any idle."""
    session.execute(text("SELECT 1"))
    workers = [WorkerOut.model_validate(w, from_attributes=True) for w in queries.live_workers(session, alive_seconds)]
    problems = [f"worker {w.id}: {w.problem}" for w in workers if w.problem]
    status = "degraded" if problems else "ok"
    return Health(status=status, database="ok", queue=queries.queue_counts(session), workers=workers, problems=problems)


@router.get("/health", responses={503: {"model": ErrorBody}})
async def health(db: ReadDatabaseDep, settings: SettingsDep) -> Health:
    """Liveness, the database, the queue depth and the workers that heartbeated recently; `degraded` with the
    reasons when some worker cannot take jobs (its disk is full)."""
    return await db.run(checked, settings.worker_alive_seconds)
