"""How the API shows a job (links, progress) and documents its errors; shared by the route modules."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import Row

from service import records
from service.api import images
from service.api.schemas import EpochMetricOut, ErrorBody, JobOut, Progress
from service.contracts import EpochRecord
from service.models import Job, Status
from service.spec import JobSpec

Responses = dict[int | str, dict[str, Any]]


def errors(*answers: tuple[int, str]) -> Responses:
    """OpenAPI `responses` for these status codes, each with the one error body and its description."""
    return {code: {"model": ErrorBody, "description": text} for code, text in answers}


ERRORS = errors(
    (401, "Sign-in needed (a bearer token, or the dashboard's cookie)"),
    (403, "The role or the ownership the request needs is missing"),
    (404, "No such job or artifact"),
    (422, "Invalid request"),
)
PNG: Responses = {200: {"content": {"image/png": {}}, "description": "A PNG image"}}


# What only a request body can cause (POST /jobs, POST /sweeps): bytes that are not UTF-8 JSON, a body over
# MAX_BODY_BYTES, a reused key, a form instead of JSON.
BODY_ERRORS = errors(
    (400, "The body could not be read (e.g. not UTF-8)"),
    (409, "Idempotency-Key already used with another body"),
    (413, "Request body too large"),
    (415, "The body was sent as something other than JSON"),
)
NOT_NOW = errors((409, "Not possible in the job's current status"))
OVER_QUOTA = errors((429, "Over the submitter's quota of active jobs"))
# An uploaded image (predict, and looking inside with an upload).
UPLOAD_ERRORS = errors(
    (400, "The body is not valid multipart/form-data"),
    (413, f"The image is over {images.MAX_BYTES // (1024 * 1024)} MiB"),
    (415, "The upload is not a PNG or JPEG image"),
    (422, f"No image, or one that is truncated or corrupt, or over {images.MAX_PIXELS / 1e6:g} megapixels"),
)
# Looking inside a job's network (activations, Grad-CAM, filters).
INSIDE_ERRORS = errors(
    (409, "The job has no weights yet: neither weights.pt nor a checkpoint"),
    (422, "No such test image or class"),
    (503, "The process that looks inside networks failed or took too long; try again"),
)


def progress_out(
    epochs_completed: int,
    epochs_total: int,
    steps_done: int,
    steps_total: int | None,
    eta_seconds: float | None,
    updated_at: datetime | None,
    succeeded: bool = False,
) -> Progress:
    """How far a job has come, as `GET /jobs/{id}` and its progress events show it: `fraction` is the training
    steps done out of all of them (1 once it has succeeded, whatever the last heartbeat counted)."""
    fraction = 1.0 if succeeded else min(1.0, steps_done / steps_total) if steps_total else 0.0
    return Progress(
        epochs_completed=epochs_completed,
        epochs_total=epochs_total,
        steps_done=steps_done,
        steps_total=steps_total,
        fraction=round(fraction, 4),
        eta_seconds=eta_seconds,
        updated_at=updated_at,
    )


def job_out(job: Job | Row[Any]) -> JobOut:
    """A job (its ORM object or its row) as the API shows it, with links to everything it has."""
    spec = JobSpec.model_validate(job.spec)
    base = f"/jobs/{job.id}"
    return JobOut(
        id=job.id,
        name=job.name,
        status=Status(job.status),
        spec=spec,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        waiting_for=job.waiting_for,
        device=job.device,
        parameter_count=job.parameter_count,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        sweep_id=job.sweep_id,
        owner=job.owner,
        progress=progress_out(
            job.epochs_completed,
            spec.epochs,
            job.steps_done,
            job.steps_total,
            job.eta_seconds,
            job.progress_at,
            succeeded=job.status == Status.SUCCEEDED,
        ),
        links={
            "self": base,
            "cancel": f"{base}/cancel",
            "metrics": f"{base}/metrics",
            "steps": f"{base}/metrics/steps",
            "curves": f"{base}/curves.png",
            "kernels": f"{base}/kernels",
            "confusion": f"{base}/confusion",
            "weight_change": f"{base}/weight-change.png",
            "mistakes": f"{base}/mistakes.png",
            "artifacts": f"{base}/artifacts",
            "rerun": f"{base}/rerun",
            "predict": f"{base}/predict",
            **({"sweep": f"/sweeps/{job.sweep_id}"} if job.sweep_id is not None else {}),
        },
    )


def json_response(body: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """`body` serialised as it is. Returning the model itself costs the same (FastAPI ≥ 0.130 takes a model of the
    route's response type as it is and serialises it once, with pydantic), which is what the job and sweep routes do."""
    return Response(body.model_dump_json(), status_code=status_code, headers=headers, media_type="application/json")


def epoch_record(row: Row[Any]) -> EpochRecord:
    """An epoch_metrics row as the record the worker stored (see `service.records.epoch_record`)."""
    return records.epoch_record(row)


def epoch_out(record: EpochRecord) -> EpochMetricOut:
    """One epoch as `GET /jobs/{id}/metrics` shows it."""
    return EpochMetricOut(
        **record.scalars(),
        per_class_accuracy=record.per_class_accuracy(),
        weight_change=record.weight_change or None,
    )
