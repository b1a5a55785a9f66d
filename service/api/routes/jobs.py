"""Jobs: submit, list, read, cancel, resume or continue, delete."""

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import estimates, jobs, queries
from service.api.deps import (
    JSON_BODY,
    DatabaseDep,
    IdempotencyKey,
    JobIdPath,
    PageLimit,
    PageOffset,
    ReadDatabaseDep,
    SettingsDep,
    StoreDep,
)
from service.api.presenter import BODY_ERRORS, job_out
from service.api.resume_schemas import ContinueIn
from service.api.schemas import ErrorBody, EstimateOut, JobList, JobOut
from service.models import Status
from service.spec import DEMO, JobSpec, check_new

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
NOT_NOW: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "Not possible in the job's current status"}
}


def submitted(session: Session, spec: JobSpec, idempotency_key: str | None, alive_seconds: float) -> JobOut:
    """The job queued for `spec` (or the one an earlier request with the same key queued), with how long it takes."""
    job = job_out(jobs.create_job(session, spec, idempotency_key))
    job.estimate = EstimateOut.model_validate(estimates.estimate(session, spec, alive_seconds), from_attributes=True)
    return job


def rerun(
    session: Session, job_id: int, changed: dict[str, object], idempotency_key: str | None, alive_seconds: float
) -> JobOut:
    """A new job with job `job_id`'s spec, `changed` where given, validated as a new spec is."""
    spec = JobSpec.model_validate({**queries.job_row(session, job_id).spec, **changed})
    check_new(spec)
    return submitted(session, spec, idempotency_key, alive_seconds)


def page(session: Session, status: Status | None, limit: int, offset: int, sweep_id: int | None) -> JobList:
    """One page of jobs, newest first, and how many match."""
    rows, total = queries.list_jobs(session, status, limit, offset, sweep_id)
    return JobList(items=[job_out(j) for j in rows], total=total, limit=limit, offset=offset)


def one(session: Session, job_id: int) -> JobOut:
    """The job as `GET /jobs/{id}` shows it; NotFound for an unknown id."""
    return job_out(queries.job_row(session, job_id))


def cancelled(session: Session, job_id: int) -> JobOut:
    """The job once cancelled (or asked to stop)."""
    return job_out(jobs.cancel_job(session, job_id))


@router.post("", status_code=201, responses=BODY_ERRORS, dependencies=JSON_BODY)
async def submit_job(
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
    spec: Annotated[JobSpec | None, Body(openapi_examples=EXAMPLES)] = None,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a training job; the answer echoes the spec with every default filled in, and says how long it is
    expected to train (from the live workers' measured speed), with a warning when that is long."""
    spec = spec or JobSpec()
    check_new(spec)
    job = await db.run(submitted, spec, idempotency_key, settings.worker_alive_seconds)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.post("/{job_id}/rerun", status_code=201, responses=BODY_ERRORS, dependencies=JSON_BODY)
async def rerun_job(
    job_id: JobIdPath,
    db: DatabaseDep,
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
    """Queue a new job with this job's spec, changed by the fields the body gives (validated as in POST /jobs)."""
    changed = overrides.model_dump(mode="json", include=overrides.model_fields_set) if overrides else {}
    job = await db.run(rerun, job_id, changed, idempotency_key, settings.worker_alive_seconds)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.get("")
async def list_jobs(
    db: ReadDatabaseDep,
    status: Status | None = None,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
    sweep_id: Annotated[int | None, Query(ge=1, le=queries.MAX_ID, description="Only this sweep's jobs.")] = None,
) -> JobList:
    """List jobs, newest first, optionally only those in one status or of one sweep."""
    return await db.run(page, status, limit, offset, sweep_id)


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


@router.post("/{job_id}/cancel", responses=NOT_NOW)
async def cancel_job(job_id: JobIdPath, db: DatabaseDep) -> JobOut:
    """Cancel a queued job at once, or ask a running one to stop (it keeps what it has); 409 if finished."""
    return await db.run(cancelled, job_id)


@router.post("/{job_id}/resume", responses=NOT_NOW)
async def resume_job(job_id: JobIdPath, db: DatabaseDep) -> JobOut:
    """Queue a cancelled or failed job again to go on from its checkpoint, keeping its id, epochs and files; 409 in
    another status or without a checkpoint."""
    return await db.run(lambda session: job_out(jobs.resume_job(session, job_id)))


@router.post("/{job_id}/continue", responses={**NOT_NOW, **BODY_ERRORS}, dependencies=JSON_BODY)
async def continue_job(job_id: JobIdPath, db: DatabaseDep, body: ContinueIn) -> JobOut:
    """Train a succeeded job `epochs` more epochs from its final weights and optimizer state: the same job, its spec's
    `epochs` raised, exactly as a job of that many epochs would have trained; 409 unless succeeded."""
    return await db.run(lambda session: job_out(jobs.continue_job(session, job_id, body.epochs)))


@router.delete("/{job_id}", status_code=204, response_class=Response, responses=NOT_NOW)
async def delete_job(job_id: JobIdPath, db: DatabaseDep, store: StoreDep) -> None:
    """Remove a finished job with its metrics and every file it wrote; 409 while queued or running (cancel it first)."""
    await db.run(jobs.delete_job, job_id)
    # Files go only once the rows are gone for good: the other way round, a commit that failed would leave a job
    # listing files that no longer exist, while this way the worst left behind is files nothing points at. No
    # worker writes them any more: only a finished job is deleted, and a stale claim's writes are refused. The
    # drawing cache is left alone: its pictures are keyed by artifact keys and times no later job repeats, and it
    # prunes itself.
    try:
        await run_in_threadpool(store.discard_job, job_id)
    except Exception:  # the job is gone either way; say where its files are for whoever cleans up
        log.exception("job %s deleted, but its files could not all be removed (keys %s/…)", job_id, job_id)
