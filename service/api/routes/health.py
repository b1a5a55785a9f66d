"""Liveness: the database, the queue and the workers; answered without a token, but then with no more than a load
balancer needs (up or not), never host names, pids, job ids or disk paths."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from service import queries
from service.api.auth import SESSION_COOKIE, identify
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
    queue: dict[str, int] | None = Field(None, description="Jobs by status; only to someone signed in.")
    workers: list[WorkerOut] | None = Field(None, description="Only to someone signed in.")
    problems: list[str] | None = Field(
        None, description="What makes the service degraded, one line each (empty when ok); only to someone signed in."
    )


def checked(session: Session, alive_seconds: float, token: str | None, cookie: str | None, api_token: str) -> Health:
    """The database answered; the queue, and the workers seen within `alive_seconds` with what keeps any idle, for
    whoever may read (`token` or `cookie` names someone, or the service is open)."""
    session.execute(text("SELECT 1"))
    workers = [WorkerOut.model_validate(w, from_attributes=True) for w in queries.live_workers(session, alive_seconds)]
    problems = [f"worker {w.id}: {w.problem}" for w in workers if w.problem]
    status = "degraded" if problems else "ok"
    if isinstance(identify(session, token, cookie, api_token), str):
        return Health(status=status, database="ok")
    return Health(status=status, database="ok", queue=queries.queue_counts(session), workers=workers, problems=problems)


@router.get("/health", responses={503: {"model": ErrorBody}}, response_model_exclude_none=True)
async def health(request: Request, db: ReadDatabaseDep, settings: SettingsDep) -> Health:
    """Liveness and the database; to someone signed in (a bearer token or the dashboard's cookie) or on an open
    service, also the queue depth and the workers that heartbeated recently; `degraded` when some worker cannot take
    jobs (its disk is full)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else None
    cookie = request.cookies.get(SESSION_COOKIE)
    return await db.run(checked, settings.worker_alive_seconds, bearer or None, cookie, settings.api_token)
