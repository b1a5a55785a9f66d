"""Jobs: submit, rerun, list, read, delete (cancel, resume and continue: `service.api.routes.turns`)."""

import asyncio
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import estimates, idempotency, jobs, queries, users
from service.api.auth import PersonDep
from service.api.deps import (
    JSON_BODY,
    CountsDep,
    DatabaseDep,
    IdempotencyKey,
    JobIdPath,
    PageLimit,
    PageOffset,
    ReadDatabaseDep,
    SettingsDep,
    StoreDep,
)
from service.api.presenter import BODY_ERRORS, NOT_NOW, OVER_QUOTA, job_out
from service.api.schemas import EstimateOut, JobList, JobOut
from service.config import Settings
from service.models import Job, Status
from service.spec import DEMO, JobSpec, check_new
from service.users import Person, access

log = logging.getLogger("service")

# GET /jobs/{id}?wait=: long enough for the quick demo and a script's patience; a poll every half second is
# prompt for a person and a trifle for the database.
MAX_WAIT_SECONDS = 600
WAIT_POLL_SECONDS = 0.5

router = APIRouter(prefix="/jobs", tags=["jobs"])

EXAMPLES = {
    "quick synthetic demo": {
        "summary": "3 epochs on 1,280 generated images at 64×64: learns them in 1–2 minutes on a CPU",
        "value": DEMO,
    },
    "the lecture": {
        "summary": "The lecture's run: CIFAR-10 at 224×224, batch 512, Adam at 1e-3, fp32",
        "value": {"epochs": 2, "learning_rate": 0.001, "precision": "fp32"},
    },
    "defaults": {"summary": "Every default: 5 epochs of CIFAR-10 at 224×224", "value": {}},
}
RERUN_EXAMPLES = {
    "as it was": {"summary": "The same spec again", "value": {}},
    "another learning rate": {"summary": "The same, at 1e-3", "value": {"learning_rate": 0.001}},
}


def submitted(session: Session, spec: JobSpec, idempotency_key: str | None, who: Person, settings: Settings) -> JobOut:
    """The job queued for `spec` (or the one an earlier request with the same key queued), within `who`'s quota,
    with how long it should take."""
    if idempotency.earlier(session, Job, idempotency_key, idempotency.fingerprint(spec)) is None:
        access.require_quota(session, who, 1, settings.max_active_jobs, settings.max_sweep_jobs, sweep=False)
    job = job_out(jobs.create_job(session, spec, idempotency_key, owner=who.name))
    estimate = estimates.estimate(session, spec, settings.worker_alive_seconds)
    job.estimate = EstimateOut.model_validate(estimate, from_attributes=True)
    return job


def rerun(
    session: Session,
    job_id: int,
    changed: dict[str, object],
    idempotency_key: str | None,
    who: Person,
    settings: Settings,
) -> JobOut:
    """A new job with job `job_id`'s spec, `changed` where given, validated as a new spec is; only by its owner."""
    job = queries.job_row(session, job_id)
    access.require_owner(who, job.owner, f"job {job_id}", "rerun")
    spec = JobSpec.model_validate({**job.spec, **changed})
    check_new(spec)
    return submitted(session, spec, idempotency_key, who, settings)


def page(
    session: Session,
    status: Status | None,
    limit: int,
    offset: int,
    sweep_id: int | None,
    owners: tuple[str | None] | None,
    total: int | None,
) -> JobList:
    """One page of jobs, newest first, and how many match (counted now unless `total` is given)."""
    rows, counted = queries.list_jobs(session, status, limit, offset, sweep_id, owners, count=total is None)
    items = [job_out(j) for j in rows]
    return JobList(items=items, total=total if counted is None else counted, limit=limit, offset=offset)


def one(session: Session, job_id: int) -> JobOut:
    """The job as `GET /jobs/{id}` shows it; NotFound for an unknown id."""
    return job_out(queries.job_row(session, job_id))


def deleted(session: Session, job_id: int, who: Person) -> None:
    """The finished job removed, by its owner or an admin."""
    access.require_owner(who, queries.job_row(session, job_id).owner, f"job {job_id}", "delete")
    jobs.delete_job(session, job_id)
    log.info("job %s deleted by %s", job_id, who.name or "someone (no sign-in)")


@router.post("", status_code=201, responses={**BODY_ERRORS, **OVER_QUOTA}, dependencies=JSON_BODY)
async def submit_job(
    db: DatabaseDep,
    who: PersonDep,
    settings: SettingsDep,
    response: Response,
    spec: Annotated[JobSpec | None, Body(openapi_examples=EXAMPLES)] = None,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a training job; the answer echoes the spec with every default filled in, and says how long it is
    expected to train (from the live workers' measured speed), with a warning when that is long."""
    spec = spec or JobSpec()
    check_new(spec)
    job = await db.run(submitted, spec, idempotency_key, who, settings)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.post("/{job_id}/rerun", status_code=201, responses={**BODY_ERRORS, **OVER_QUOTA}, dependencies=JSON_BODY)
async def rerun_job(
    job_id: JobIdPath,
    db: DatabaseDep,
    who: PersonDep,
    settings: SettingsDep,
    response: Response,
    overrides: Annotated[
        JobSpec | None,
        Body(
            description="Spec fields to change; every field not given keeps the job's value.",
            openapi_examples=RERUN_EXAMPLES,
        ),
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a new job with this job's spec, changed by the fields the body gives (validated as in POST /jobs); a
    member reruns only their own jobs."""
    changed = overrides.model_dump(mode="json", include=overrides.model_fields_set) if overrides else {}
    job = await db.run(rerun, job_id, changed, idempotency_key, who, settings)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.get("")
async def list_jobs(
    db: ReadDatabaseDep,
    who: PersonDep,
    counts: CountsDep,
    status: Status | None = None,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
    sweep_id: Annotated[int | None, Query(ge=1, le=queries.MAX_ID, description="Only this sweep's jobs.")] = None,
    owner: Annotated[
        str | None,
        Query(pattern=rf"^(?:{users.NAME.pattern})$", description="Only this person's jobs; `me` for your own."),
    ] = None,
) -> JobList:
    """List jobs, newest first, optionally only those in one status, of one sweep or of one person."""
    owners = None if owner is None else ((who.name if owner == "me" else owner),)
    key = (status, sweep_id, owners)
    known = counts.large(key)
    found = await db.run(page, status, limit, offset, sweep_id, owners, known)
    if known is None:
        counts.remember(key, found.total)
    elif counts.stale(key):
        counts.refresh(key, lambda: db.run(queries.count_jobs, status, sweep_id, owners))
    return found


@router.get("/{job_id}")
async def get_job(
    job_id: JobIdPath,
    db: ReadDatabaseDep,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the job to finish before answering."),
    ] = 0,
) -> JobOut:
    """A job's status, progress, device and error; with `wait`, once it has finished (or `wait` seconds passed)."""
    deadline = time.monotonic() + wait
    while True:
        job = await db.run(one, job_id)
        if job.status.finished or time.monotonic() >= deadline:
            return job
        # One short read each time: a waiting client holds no transaction and no connection.
        await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


@router.delete("/{job_id}", status_code=204, response_class=Response, responses=NOT_NOW)
async def delete_job(job_id: JobIdPath, db: DatabaseDep, store: StoreDep, who: PersonDep) -> None:
    """Remove a finished job with its metrics and every file it wrote; 409 while queued or running (cancel it first).
    A member deletes only their own jobs."""
    await db.run(deleted, job_id, who)
    # Files go only once the rows are gone for good: the other way round, a commit that failed would leave a job
    # listing files that no longer exist, while this way the worst left behind is files nothing points at. No
    # worker writes them any more: only a finished job is deleted, and a stale claim's writes are refused. The
    # drawing cache is left alone: its pictures are keyed by artifact keys and times no later job repeats, and it
    # prunes itself.
    try:
        await run_in_threadpool(store.discard_job, job_id)
    except Exception:  # the job is gone either way; say where its files are for whoever cleans up
        log.exception("job %s deleted, but its files could not all be removed (keys %s/…)", job_id, job_id)
