"""Every job state transition, used by both the API and the worker. No other code writes `status`.

queued → running → succeeded | failed | cancelled; a running job whose lease lapses, or whose worker its
supervisor saw die, goes back to queued (or to failed after `max_attempts`). Worker-side writes are fenced: they
name the lease token they were given at claim time and change nothing once another worker holds the job.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, delete, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from service import events
from service.errors import Conflict
from service.models import FINISHED, Job, Status, Worker, utcnow
from service.queries import get_job
from service.spec import JobSpec


class LeaseLost(Exception):
    """The worker no longer holds this job: it must stop and write nothing more for it."""


# ---------------------------------------------------------------- the API's side


def create_job(
    session: Session,
    spec: JobSpec,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    sweep_id: int | None = None,
) -> Job:
    """Queue a job (one of sweep `sweep_id`'s, if given), or return the job already created under the same
    idempotency key and body."""
    if idempotency_key is not None:
        existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if existing is not None:
            if existing.request_hash != request_hash:
                raise Conflict(f"Idempotency-Key {idempotency_key!r} was already used with a different body")
            return existing
    job = Job(
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        status=Status.QUEUED,
        device_request=spec.device,
        created_at=utcnow(),
        max_attempts=spec.max_attempts,
        attempts=0,
        epochs_completed=0,
        steps_done=0,
        cancel_requested=False,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        sweep_id=sweep_id,
    )
    session.add(job)
    session.flush()
    events.emit_status(session, [job.id], Status.QUEUED)
    return job


def cancel_job(session: Session, job_id: int) -> Job:
    """Cancel: a queued job at once, a running one by asking its worker. Repeating it changes nothing."""
    job = get_job(session, job_id)  # NotFound first: also for ids no BIGINT can hold
    now = utcnow()
    cancelled = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == Status.QUEUED)
        .values(status=Status.CANCELLED, finished_at=now, cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    if cancelled.rowcount:  # type: ignore[attr-defined]
        events.emit_status(session, [job_id], Status.CANCELLED)
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == Status.RUNNING)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    session.refresh(job)
    if job.status in (Status.SUCCEEDED, Status.FAILED):
        raise Conflict(f"job {job_id} already {job.status}; only queued or running jobs can be cancelled")
    return job


def delete_job(session: Session, job_id: int) -> None:
    """Remove a finished job's row; every table of its own (epochs, artifacts…) follows by ON DELETE CASCADE, which
    SQLite enforces too (`service.db`); its sweep stays. A queued or running job is a Conflict: a worker may be
    writing its files. The caller removes the files once this commits."""
    job = get_job(session, job_id)  # NotFound first: a job deleted already, or never there
    deleted = session.execute(
        delete(Job).where(Job.id == job_id, Job.status.in_(FINISHED)).execution_options(synchronize_session=False)
    )
    if deleted.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"job {job_id} is {job.status}; cancel it first (POST /jobs/{job_id}/cancel)")


# ---------------------------------------------------------------- the worker's side


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
    progress = {"steps_done": steps_done, "steps_total": steps_total, "eta_seconds": eta_seconds}
    events.emit(
        session,
        job_id,
        events.Kind.PROGRESS,
        {**progress, "epochs_completed": row.epochs_completed, "updated_at": now.isoformat()},
    )
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


def reap_expired(session: Session, now: datetime | None = None) -> int:
    """Take back running jobs whose lease lapsed: re-queue them, or fail them after `max_attempts`.

    A job whose cancel was requested ends `cancelled` instead. Returns how many jobs were taken back.
    """
    now = now or utcnow()
    return len(_take_back(session, Job.lease_expires_at < now, now))


def release_dead_worker(session: Session, worker_id: str) -> list[int]:
    """Take back the running job of a worker seen to die (its supervisor reaped the process) at once, instead of
    when its lease lapses; the same outcomes as `reap_expired`. Returns the ids of the jobs taken back."""
    return _take_back(session, Job.worker_id == worker_id, utcnow())


def _take_back(session: Session, which: ColumnElement[bool], now: datetime) -> list[int]:
    """Re-queue the running jobs `which` selects; fail those out of attempts; cancel those asked to stop."""
    running = and_(Job.status == Status.RUNNING, which)
    cleared = {"lease_token": None, "lease_expires_at": None, "worker_id": None, "eta_seconds": None}
    taken: list[int] = []
    for where, values in (
        (Job.cancel_requested.is_(True), {"status": Status.CANCELLED, "finished_at": now}),
        (
            Job.attempts >= Job.max_attempts,
            {
                "status": Status.FAILED,
                "finished_at": now,
                "error": literal("the worker running this job stopped responding on each of its ")
                + cast(Job.attempts, String)
                + literal(" attempts"),
            },
        ),
        (Job.attempts < Job.max_attempts, {"status": Status.QUEUED}),
    ):
        rows = session.execute(
            update(Job)
            .where(running, where)
            .values(**cleared, **values)
            .returning(Job.id, Job.error)
            .execution_options(synchronize_session=False)
        ).all()
        for row in rows:
            events.emit_status(session, [row.id], Status(str(values["status"])), error=row.error)
        taken += [row.id for row in rows]
    return taken
