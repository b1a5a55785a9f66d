"""A client's transitions: queue a job, cancel it, resume or continue it from its checkpoint, delete it."""

from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from service import events, idempotency, wakeup
from service.errors import Conflict, InvalidRequest
from service.models import FINISHED, Job, Status, utcnow
from service.queries import get_job
from service.spec import JobSpec


def create_job(
    session: Session,
    spec: JobSpec,
    idempotency_key: str | None = None,
    sweep_id: int | None = None,
    owner: str | None = None,
) -> Job:
    """Queue `owner`'s job (one of sweep `sweep_id`'s, if given), or return the job already created under the same
    idempotency key and spec (Conflict for the same key with another spec)."""
    body = idempotency.fingerprint(spec)
    existing = idempotency.earlier(session, Job, idempotency_key, body)
    if existing is not None:
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
        request_hash=body if idempotency_key is not None else None,
        sweep_id=sweep_id,
        owner=owner,
    )
    stored = idempotency.insert(session, job)
    if stored is not job:  # a concurrent request with the same key queued it first
        return stored
    events.emit_status(session, [job.id], Status.QUEUED)
    wakeup.notify_queued(session)
    return job


def cancel_job(session: Session, job_id: int, by: str | None = None) -> Job:
    """Cancel: a queued job at once, a running one by asking its worker. Repeating it changes nothing. The job's
    log says who asked (`by`), when someone signed in did."""
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
    if by is not None and (cancelled.rowcount or job.status == Status.RUNNING):  # type: ignore[attr-defined]
        events.emit_logs(session, job_id, [f"cancel asked by {by}"])
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


def resume_job(session: Session, job_id: int) -> Job:
    """Queue a cancelled or failed job again, to go on from its checkpoint: the same id, its epochs, files and log
    kept, and its attempts counted afresh. Conflict for a job in another status, or one with no checkpoint."""
    job = get_job(session, job_id)
    if job.status not in (Status.CANCELLED, Status.FAILED):
        hint = f"; POST /jobs/{job_id}/continue trains it for more epochs" if job.status == Status.SUCCEEDED else ""
        raise Conflict(f"job {job_id} is {job.status}; only a cancelled or failed job is resumed{hint}")
    if job.checkpoint is None:
        raise Conflict(
            f"job {job_id} has no checkpoint to resume from: it stopped before its first epoch ended "
            f"(POST /jobs/{job_id}/rerun queues its spec again)"
        )
    return _requeue(session, job, Status(job.status), {})


def continue_job(session: Session, job_id: int, epochs: int) -> Job:
    """Queue a succeeded job again for `epochs` more epochs, from its final weights and optimizer state: its spec
    then says the epochs it has in all, and training goes on exactly as a job of that many epochs would have."""
    job = get_job(session, job_id)
    if job.status != Status.SUCCEEDED:
        raise Conflict(f"job {job_id} is {job.status}; only a succeeded job is continued")
    if job.checkpoint is None:
        raise Conflict(f"job {job_id} kept no final checkpoint (it finished before checkpoints were kept)")
    total = job.spec["epochs"] + epochs
    try:
        spec = JobSpec.model_validate({**job.spec, "epochs": total})
    except ValidationError as exc:
        msg = f"job {job_id} has {job.spec['epochs']} epochs; {total} in all is more than a job may have (1000)"
        raise InvalidRequest(msg, [{"loc": ["body", "epochs"], "msg": msg, "type": "less_than_equal"}]) from exc
    return _requeue(session, job, Status.SUCCEEDED, {"spec": spec.model_dump(mode="json")})


def _requeue(session: Session, job: Job, status: Status, values: dict[str, Any]) -> Job:
    """Back to the queue from `status`, if it is still there (two clicks queue it once)."""
    queued = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == status)
        .values(
            **values,
            status=Status.QUEUED,
            cancel_requested=False,
            error=None,
            finished_at=None,
            attempts=0,
            runs_without_progress=0,  # its runs without progress are counted afresh, as its attempts are
            waiting_for=None,
            eta_seconds=None,
        )
        .execution_options(synchronize_session=False)
    )
    if queued.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(job)
        raise Conflict(f"job {job.id} is {job.status} now")
    events.emit_status(session, [job.id], Status.QUEUED)
    wakeup.notify_queued(session)
    session.refresh(job)
    return job
