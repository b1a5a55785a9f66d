"""The worker's transitions: claim the oldest job it should run, renew the lease with progress, finish or hand back.

Every write after the claim is fenced by the lease token, so a worker that lost its job changes nothing.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from service import events, wakeup
from service.models import Job, Status, Worker, utcnow
from service.spec import JobSpec


class LeaseLost(Exception):
    """The worker no longer holds this job: it must stop and write nothing more for it."""


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds, and the token that fences its writes."""

    job_id: int
    token: str
    spec: JobSpec
    attempt: int
    checkpoint: str | None


def claim_next(
    session: Session,
    worker_id: str,
    has_cuda: bool,
    lease_seconds: float,
    alive_seconds: float,
    bf16_native: bool = True,
) -> Claim | None:
    """Atomically take the oldest queued job this worker should run, with a fresh lease; None if none.

    One UPDATE whose target is chosen by a subquery: SQLite runs it under the write lock, Postgres skips
    rows other claimers have locked. A job this worker cannot run well is left to a live worker that can:
    `device: cuda` to CUDA workers, `precision: bf16` to workers with native bf16. With no such worker
    alive it takes the job anyway, so that it fails with a clear error instead of waiting forever.
    """
    now = utcnow()
    candidate = aliased(Job)
    eligible = candidate.status == Status.QUEUED
    alive = and_(Worker.stopped_at.is_(None), Worker.last_seen_at >= now - timedelta(seconds=alive_seconds))
    if not has_cuda:
        cuda_worker_alive = exists().where(alive, Worker.device.startswith("cuda"))
        eligible = and_(eligible, or_(candidate.device_request != "cuda", ~cuda_worker_alive))
    if not bf16_native:
        bf16_worker_alive = exists().where(alive, Worker.bf16_native.is_(True))
        wants_bf16 = candidate.spec["precision"].as_string() == "bf16"
        eligible = and_(eligible, or_(~wants_bf16, ~bf16_worker_alive))
    target = (
        select(candidate.id)
        .where(eligible)
        .order_by(candidate.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    token = uuid.uuid4().hex
    row = session.execute(
        update(Job)
        .where(Job.id == target, Job.status == Status.QUEUED)
        .values(
            status=Status.RUNNING,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            worker_id=worker_id,
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
            progress_at=now,
            waiting_for=None,
        )
        .returning(Job.id, Job.spec, Job.attempts, Job.checkpoint)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    events.emit_status(session, [row.id], Status.RUNNING)
    return Claim(row.id, token, JobSpec.model_validate(row.spec), row.attempts, row.checkpoint)


def fenced_update(session: Session, job_id: int, token: str, **values: Any) -> None:
    """Update a running job only if `token` still holds its lease; LeaseLost otherwise."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_token == token, Job.status == Status.RUNNING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"job {job_id}: lease {token[:8]}… is no longer held")


def heartbeat(
    session: Session,
    job_id: int,
    token: str,
    lease_seconds: float,
    steps_done: int,
    steps_total: int | None,
    eta_seconds: float | None,
) -> bool:
    """Renew the lease and publish progress; returns whether a cancel was requested."""
    now = utcnow()
    fenced_update(
        session,
        job_id,
        token,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        steps_done=steps_done,
        steps_total=steps_total,
        eta_seconds=eta_seconds,
        progress_at=now,
    )
    row = session.execute(select(Job.cancel_requested, Job.epochs_completed).where(Job.id == job_id)).one()
    progress = events.ProgressData(
        steps_done=steps_done,
        steps_total=steps_total,
        eta_seconds=eta_seconds,
        epochs_completed=row.epochs_completed,
        updated_at=now,
    )
    events.emit(session, job_id, events.Kind.PROGRESS, progress.model_dump(mode="json"))
    return bool(row.cancel_requested)


def finish(session: Session, job_id: int, token: str, status: Status, error: str | None = None) -> None:
    """End a run: succeeded, failed (with a reason) or cancelled."""
    if not status.finished:
        raise ValueError(f"not a final status: {status}")
    fenced_update(
        session,
        job_id,
        token,
        status=status,
        error=error,
        finished_at=utcnow(),
        lease_token=None,
        lease_expires_at=None,
        eta_seconds=None,
    )
    events.emit_status(session, [job_id], status, error=error, end=False)  # the worker ends the stream
    events.compact(session, [job_id])


def hand_back(
    session: Session, job_id: int, token: str, checkpoint: str | None, waiting_for: str | None = None
) -> None:
    """A worker shutting down, or out of disk space, returns its job to the queue, resumable from `checkpoint`;
    the attempt too. `waiting_for` says what the job waits for, when it is more than a free worker."""
    values: dict[str, Any] = {"checkpoint": checkpoint} if checkpoint else {}
    fenced_update(
        session,
        job_id,
        token,
        **values,
        status=Status.QUEUED,
        lease_token=None,
        lease_expires_at=None,
        worker_id=None,
        eta_seconds=None,
        attempts=Job.attempts - 1,
        waiting_for=waiting_for,
    )
    events.emit_status(session, [job_id], Status.QUEUED, waiting_for=waiting_for)
    wakeup.notify_queued(session)
