"""The worker's transitions: claim the oldest job it should run, renew the lease with progress, finish or hand back.

Every write after the claim is fenced by the lease token, so a worker that lost its job changes nothing.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select, update
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
    runs_without_progress: int = 1  # this run included: 2 and more, the runs before it since that checkpoint died


def claim_next(
    session: Session,
    worker_id: str,
    has_cuda: bool,
    lease_seconds: float,
    alive_seconds: float,
    bf16_native: bool = True,
) -> Claim | None:
    """Atomically take the next queued job this worker should run, fairly between people, with a fresh lease; None
    if none.

    Fair turns: the oldest queued job of the person with the fewest running jobs; between people with as many, the
    one who has waited longest, since their last job started or, if later, since they queued their oldest job (see
    `_turn_order`). One UPDATE whose target is chosen by a subquery: SQLite runs it under the write lock, Postgres
    skips rows other claimers have locked. A job this worker cannot run well is left to a live worker that can:
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
        .order_by(*_turn_order(candidate))
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
            runs_without_progress=Job.runs_without_progress + 1,
            started_at=func.coalesce(Job.started_at, now),
            progress_at=now,
            waiting_for=None,
        )
        .returning(Job.id, Job.spec, Job.attempts, Job.checkpoint, Job.runs_without_progress)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    events.emit_status(session, [row.id], Status.RUNNING)
    spec = JobSpec.model_validate(row.spec)
    return Claim(row.id, token, spec, row.attempts, row.checkpoint, row.runs_without_progress)


def _turn_order(candidate: Any) -> tuple[Any, ...]:
    """How queued jobs are ordered for a claim: by how many jobs their owner runs, then since when the owner waits
    (their last job's start, or this job's queueing if later), then by id.

    Ordering by `max(last start, created_at)` per job picks, within one person, their oldest job, and across people,
    the person waiting longest: the earliest of a person's values is the later of their last start and their oldest
    queued job's time. Both subqueries are index lookups (jobs by owner and status, by owner and started_at).
    """
    mine = aliased(Job)
    # Plain equality, which the indexes serve (IS NOT DISTINCT FROM is not indexable on Postgres): jobs of nobody
    # (a service without sign-in) count as their own each, and are taken oldest first.
    same_owner = mine.owner == candidate.owner
    running = select(func.count()).where(same_owner, mine.status == Status.RUNNING).scalar_subquery()
    last_start = select(func.max(mine.started_at)).where(same_owner).scalar_subquery()
    waiting_since = case((last_start > candidate.created_at, last_start), else_=candidate.created_at)
    return running, waiting_since, candidate.id


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
    # A new checkpoint is progress; without one, the run is not counted, as its attempt is not.
    values: dict[str, Any] = (
        {"checkpoint": checkpoint, "runs_without_progress": 0}
        if checkpoint
        else {"runs_without_progress": case((Job.runs_without_progress > 0, Job.runs_without_progress - 1), else_=0)}
    )
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
