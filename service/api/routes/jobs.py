"""Jobs: submit, list, read, cancel, delete."""

import asyncio
import hashlib
import json
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import jobs, queries
from service.api.deps import DatabaseDep, JobIdPath, ReadDatabaseDep, StoreDep, require_json
from service.api.presenter import job_out, json_response
from service.api.schemas import ErrorBody, JobList, JobOut
from service.models import Status
from service.spec import DEMO, JobSpec, check_new

log = logging.getLogger("service")

# The most jobs one page of GET /jobs returns.
MAX_PAGE = 100
# GET /jobs/{id}?wait=: long enough for the quick demo and a script's patience; a poll every half second is
# prompt for a person and a trifle for the database.
MAX_WAIT_SECONDS = 600
WAIT_POLL_SECONDS = 0.5


router = APIRouter(prefix="/jobs", tags=["jobs"])

EXAMPLES = {
    "quick synthetic demo": {
        "summary": "3 epochs on 1,280 generated images at 64×64: learns them in about a minute on a CPU",
        "value": DEMO,
    },
    "the lecture": {
        "summary": "The lecture's run: CIFAR-10 at 224×224, batch 512, Adam at 1e-3, fp32",
        "value": {"epochs": 2, "learning_rate": 0.001, "precision": "fp32"},
    },
    "defaults": {"summary": "Every default: 5 epochs of CIFAR-10 at 224×224", "value": {}},
}


# What only a request body can cause: bytes that are not UTF-8 JSON, a body over MAX_BODY_BYTES, a reused key.
JSON_BODY = [Depends(require_json)]
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body could not be read (e.g. not UTF-8)"},
    409: {"model": ErrorBody, "description": "Idempotency-Key already used with another body"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    415: {"model": ErrorBody, "description": "The body was sent as something other than JSON"},
}


def _digest(spec: JobSpec) -> str:
    """What an Idempotency-Key is bound to: the resolved spec."""
    return hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _created(job: JobOut) -> Response:
    return json_response(job, status_code=201, headers={"Location": f"/jobs/{job.id}"})


@router.post("", status_code=201, response_model=JobOut, responses=BODY_ERRORS, dependencies=JSON_BODY)
async def submit_job(
    db: DatabaseDep,
    spec: Annotated[JobSpec | None, Body(openapi_examples=EXAMPLES)] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Response:
    """Queue a training job; the answer echoes the spec with every default filled in."""
    spec = spec or JobSpec()
    check_new(spec)
    digest = _digest(spec)
    return _created(await db.run(lambda s: job_out(jobs.create_job(s, spec, idempotency_key, digest))))


@router.post("/{job_id}/rerun", status_code=201, response_model=JobOut, responses=BODY_ERRORS, dependencies=JSON_BODY)
async def rerun_job(
    job_id: JobIdPath,
    db: DatabaseDep,
    overrides: Annotated[
        JobSpec | None,
        Body(
            description="Spec fields to change; every field not given keeps the job's value.",
            openapi_examples={
                "as it was": {"summary": "The same spec again", "value": {}},
                "another learning rate": {"summary": "The same, at 1e-3", "value": {"learning_rate": 0.001}},
            },
        ),
    ] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> Response:
    """Queue a new job with this job's spec, changed by the fields the body gives (validated as in POST /jobs)."""
    changed = overrides.model_dump(mode="json", include=overrides.model_fields_set) if overrides else {}

    def rerun(session: Session) -> JobOut:
        spec = JobSpec.model_validate({**queries.job_row(session, job_id).spec, **changed})
        check_new(spec)
        return job_out(jobs.create_job(session, spec, idempotency_key, _digest(spec)))

    return _created(await db.run(rerun))


@router.get("", response_model=JobList)
async def list_jobs(
    db: ReadDatabaseDep,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=queries.MAX_ID)] = 0,
    sweep_id: Annotated[int | None, Query(ge=1, le=queries.MAX_ID, description="Only this sweep's jobs.")] = None,
) -> Response:
    """List jobs, newest first, optionally only those in one status or of one sweep."""

    def page(session: Session) -> JobList:
        rows, total = queries.list_jobs(session, status, limit, offset, sweep_id)
        return JobList(items=[job_out(j) for j in rows], total=total, limit=limit, offset=offset)

    return json_response(await db.run(page))


@router.get("/{job_id}", response_model=JobOut)
async def get_job(
    job_id: JobIdPath,
    db: ReadDatabaseDep,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the job to finish before answering."),
    ] = 0,
) -> Response:
    """A job's status, progress, device and error; with `wait`, once it has finished (or `wait` seconds passed)."""
    deadline = time.monotonic() + wait
    while True:
        job = await db.run(lambda s: job_out(queries.job_row(s, job_id)))
        if job.status.finished or time.monotonic() >= deadline:
            return json_response(job)
        # One short read each time: a waiting client holds no transaction and no connection.
        await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


@router.post("/{job_id}/cancel", response_model=JobOut, responses={409: {"model": ErrorBody}})
async def cancel_job(job_id: JobIdPath, db: DatabaseDep) -> Response:
    """Cancel a queued job at once, or ask a running one to stop (it keeps what it has); 409 if finished."""
    return json_response(await db.run(lambda s: job_out(jobs.cancel_job(s, job_id))))


@router.delete("/{job_id}", status_code=204, response_class=Response, responses={409: {"model": ErrorBody}})
async def delete_job(job_id: JobIdPath, db: DatabaseDep, store: StoreDep) -> Response:
    """Remove a finished job with its metrics and every file it wrote; 409 while queued or running (cancel it first)."""
    await db.run(lambda s: jobs.delete_job(s, job_id))
    # Files go only once the rows are gone for good: the other way round, a commit that failed would leave a job
    # listing files that no longer exist, while this way the worst left behind is files nothing points at. No
    # worker writes them any more: only a finished job is deleted, and a stale claim's writes are refused. The
    # drawing cache is left alone: its pictures are keyed by artifact keys and times no later job repeats, and it
    # prunes itself.
    try:
        await run_in_threadpool(store.discard_job, job_id)
    except Exception:  # the job is gone either way; say where its files are for whoever cleans up
        log.exception("job %s deleted, but its files could not all be removed (keys %s/…)", job_id, job_id)
    return Response(status_code=204)
