"""How the API shows a job (links, progress) and documents its errors; shared by the route modules."""

from collections.abc import Mapping
from typing import Any

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import Row

from service import records
from service.api.schemas import EpochMetricOut, ErrorBody, JobOut, Progress
from service.contracts import EpochRecord
from service.models import Job, Status
from service.spec import JobSpec

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text_}
    for code, text_ in (
        (401, "Bearer token needed"),
        (404, "No such job or artifact"),
        (422, "Invalid request"),
    )
}
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "A PNG image"}}


def job_out(job: Job | Row[Any]) -> JobOut:
    """A job (its ORM object or its row) as the API shows it, with links to everything it has."""
    spec = JobSpec.model_validate(job.spec)
    steps_total = job.steps_total
    fraction = min(1.0, job.steps_done / steps_total) if steps_total else 0.0
    if job.status == Status.SUCCEEDED:
        fraction = 1.0
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
        progress=Progress(
            epochs_completed=job.epochs_completed,
            epochs_total=spec.epochs,
            steps_done=job.steps_done,
            steps_total=steps_total,
            fraction=round(fraction, 4),
            eta_seconds=job.eta_seconds,
            updated_at=job.progress_at,
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
    """`body` serialised once, as it is: a route returns this rather than a model, which FastAPI would validate
    again against the route's `response_model` (kept for the OpenAPI document)."""
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
