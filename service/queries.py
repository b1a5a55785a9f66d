"""Read queries shared by the routes and the state transitions: one job, pages of jobs, the queue, workers, files."""

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.models import Artifact, Job, Status, Worker, utcnow

# Largest id a BIGINT can hold; anything above cannot name a job.
MAX_ID = 2**63 - 1


def get_job(session: Session, job_id: int) -> Job:
    """The job, or NotFound (also for ids too large to be any job's)."""
    job = session.get(Job, job_id) if 1 <= job_id <= MAX_ID else None
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


def list_jobs(session: Session, status: Status | None, limit: int, offset: int) -> tuple[list[Job], int]:
    """A page of jobs, newest first, and how many match in all."""
    where = [Job.status == status] if status else []
    total = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    rows = session.scalars(select(Job).where(*where).order_by(Job.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def queue_counts(session: Session) -> dict[str, int]:
    """How many jobs are in each state."""
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    order = [Status.QUEUED, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
    return {str(status): counts.get(status, 0) for status in order}


def live_workers(session: Session, alive_seconds: float) -> list[Worker]:
    """Workers that heartbeated recently and have not said goodbye."""
    since = utcnow() - timedelta(seconds=alive_seconds)
    rows = session.scalars(
        select(Worker).where(Worker.last_seen_at >= since, Worker.stopped_at.is_(None)).order_by(Worker.id)
    )
    return list(rows)


def artifact_rows(session: Session, job_id: int, prefix: str = "") -> list[Artifact]:
    """The artifacts a job has, by name."""
    query = select(Artifact).where(Artifact.job_id == job_id)
    if prefix:
        query = query.where(Artifact.name.startswith(prefix, autoescape=True))
    return list(session.scalars(query.order_by(Artifact.name)))


def artifact_row(session: Session, job_id: int, name: str) -> Artifact:
    """One artifact's record, or NotFound saying it is not there (yet)."""
    row = session.get(Artifact, (job_id, name))
    if row is None:
        raise NotFound(f"job {job_id} has no artifact {name!r} (yet)")
    return row
