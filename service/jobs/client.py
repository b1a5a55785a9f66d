"""A client's transitions: queue a job, cancel it, delete it once finished."""

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from service import events, idempotency, wakeup
from service.errors import Conflict
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
