"""A job's turns after it was queued: cancel it, resume a cancelled or failed one from its checkpoint, continue a
succeeded one for more epochs. Each only by the job's owner (or an admin); resuming and continuing make the job
active again, so they count against the owner's quota as a new job would."""

from collections.abc import Callable

from fastapi import APIRouter
from sqlalchemy.orm import Session

from service import jobs, queries
from service.api.auth import PersonDep
from service.api.deps import JSON_BODY, DatabaseDep, JobIdPath, SettingsDep
from service.api.presenter import BODY_ERRORS, NOT_NOW, OVER_QUOTA, job_out
from service.api.resume_schemas import ContinueIn
from service.api.schemas import JobOut
from service.config import Settings
from service.models import Job
from service.users import Person, access

router = APIRouter(prefix="/jobs", tags=["jobs"])


def cancelled(session: Session, job_id: int, who: Person) -> JobOut:
    """The job once cancelled (or asked to stop), by its owner or an admin."""
    access.require_owner(who, queries.job_row(session, job_id).owner, f"job {job_id}", "cancel")
    return job_out(jobs.cancel_job(session, job_id, by=who.name))


def requeued(
    session: Session, job_id: int, who: Person, settings: Settings, what: str, turn: Callable[[Session], Job]
) -> JobOut:
    """The job back in the queue by `turn`, if `who` owns it and has room in their quota for one more active job."""
    access.require_owner(who, queries.job_row(session, job_id).owner, f"job {job_id}", what)
    access.require_quota(session, who, 1, settings.max_active_jobs, settings.max_sweep_jobs, sweep=False)
    return job_out(turn(session))


@router.post("/{job_id}/cancel", responses=NOT_NOW)
async def cancel_job(job_id: JobIdPath, db: DatabaseDep, who: PersonDep) -> JobOut:
    """Cancel a queued job at once, or ask a running one to stop (it keeps what it has); 409 if finished. A member
    cancels only their own jobs."""
    return await db.run(cancelled, job_id, who)


@router.post("/{job_id}/resume", responses={**NOT_NOW, **OVER_QUOTA})
async def resume_job(job_id: JobIdPath, db: DatabaseDep, who: PersonDep, settings: SettingsDep) -> JobOut:
    """Queue a cancelled or failed job again to go on from its checkpoint, keeping its id, epochs and files; 409 in
    another status or without a checkpoint. A member resumes only their own jobs."""
    return await db.run(requeued, job_id, who, settings, "resume", lambda s: jobs.resume_job(s, job_id))


@router.post("/{job_id}/continue", responses={**NOT_NOW, **BODY_ERRORS, **OVER_QUOTA}, dependencies=JSON_BODY)
async def continue_job(
    job_id: JobIdPath, db: DatabaseDep, who: PersonDep, settings: SettingsDep, body: ContinueIn
) -> JobOut:
    """Train a succeeded job `epochs` more epochs from its final weights and optimizer state: the same job, its spec's
    `epochs` raised, exactly as a job of that many epochs would have trained; 409 unless succeeded. A member
    continues only their own jobs."""
    return await db.run(
        requeued, job_id, who, settings, "continue", lambda s: jobs.continue_job(s, job_id, body.epochs)
    )
