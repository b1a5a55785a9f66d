"""The HTTP endpoints. Each one is a thin shell around `service.jobs`."""

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from fastapi.responses import FileResponse
from sqlalchemy import text

from service import jobs
from service.deps import ReadSessionDep, SessionDep, SettingsDep, require_token
from service.errors import NotFound
from service.models import Job
from service.schemas import (
    ArtifactList,
    ArtifactOut,
    EpochMetricOut,
    ErrorBody,
    Health,
    JobList,
    JobOut,
    JobSpec,
    KernelImageOut,
    KernelList,
    Layer,
    MetricsOut,
    Progress,
    Stage,
    Status,
    WorkerOut,
)

# The most jobs one page of GET /jobs returns.
MAX_PAGE = 100

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text_}
    for code, text_ in (
        (401, "Bearer token needed"),
        (404, "No such job or artifact"),
        (422, "Invalid request"),
    )
}
# What the worker writes: curves and kernel grids, metrics.csv, weights.pt.
ARTIFACT_TYPES = ("image/png", "text/csv", "application/octet-stream")
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "A PNG image"}}

public = APIRouter()
router = APIRouter(dependencies=[Depends(require_token)], responses=ERRORS)

JobId = Annotated[int, "job id"]


def job_out(job: Job) -> JobOut:
    """A job row as the API shows it, with links to everything it has."""
    spec = JobSpec.model_validate(job.spec)
    steps_total = job.steps_total
    fraction = min(1.0, job.steps_done / steps_total) if steps_total else 0.0
    if job.status == "succeeded":
        fraction = 1.0
    base = f"/jobs/{job.id}"
    return JobOut(
        id=job.id,
        name=job.name,
        status=job.status,
        spec=spec,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        device=job.device,
        parameter_count=job.parameter_count,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
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
            "curves": f"{base}/curves.png",
            "kernels": f"{base}/kernels",
            "artifacts": f"{base}/artifacts",
        },
    )


EXAMPLES = {
    "quick synthetic demo": {
        "summary": "2 epochs on 512 generated images at 64×64 (about a minute on a CPU)",
        "value": {
            "dataset": "synthetic",
            "epochs": 2,
            "image_size": 64,
            "train_samples": 512,
            "test_samples": 256,
        },
    },
    "the lecture": {
        "summary": "The lecture's run: CIFAR-10 at 224×224, batch 512, Adam at 1e-3, fp32",
        "value": {"epochs": 2, "learning_rate": 0.001, "precision": "fp32"},
    },
    "defaults": {"summary": "Every default: 5 epochs of CIFAR-10 at 224×224", "value": {}},
}


# What only a request body can cause: bytes that are not UTF-8 JSON, a body over MAX_BODY_BYTES, a reused key.
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body could not be read (e.g. not UTF-8)"},
    409: {"model": ErrorBody, "description": "Idempotency-Key already used with another body"},
    413: {"model": ErrorBody, "description": "Request body too large"},
}


@router.post("/jobs", status_code=201, response_model=JobOut, responses=BODY_ERRORS)
def submit_job(
    response: Response,
    session: SessionDep,
    spec: Annotated[JobSpec | None, Body(openapi_examples=EXAMPLES)] = None,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> JobOut:
    """Queue a training job; the answer echoes the spec with every default filled in."""
    spec = spec or JobSpec()
    digest = hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    job = jobs.create_job(session, spec, idempotency_key, digest)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_out(job)


@router.get("/jobs", response_model=JobList)
def list_jobs(
    session: ReadSessionDep,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=jobs.MAX_ID)] = 0,
) -> JobList:
    """List jobs, newest first, optionally only those in one status."""
    rows, total = jobs.list_jobs(session, status, limit, offset)
    return JobList(items=[job_out(j) for j in rows], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: JobId, session: ReadSessionDep) -> JobOut:
    """A job's status, progress, device and error."""
    return job_out(jobs.get_job(session, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses={409: {"model": ErrorBody}})
def cancel_job(job_id: JobId, session: SessionDep) -> JobOut:
    """Cancel a queued job at once, or ask a running one to stop (it keeps what it has); 409 if finished."""
    jobs.get_job(session, job_id)
    return job_out(jobs.cancel_job(session, job_id))


@router.get(
    "/jobs/{job_id}/metrics",
    response_model=MetricsOut,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with ?format=csv"}},
)
def get_metrics(job_id: JobId, session: ReadSessionDep, format: Literal["json", "csv"] = "json") -> Any:
    """Per-epoch training loss, test loss, test accuracy and speed, as JSON or CSV."""
    job = jobs.get_job(session, job_id)
    rows = [EpochMetricOut.model_validate(m, from_attributes=True) for m in job.metrics]
    if format == "csv":
        return Response(jobs.metrics_csv(r.model_dump() for r in rows), media_type="text/csv")
    return MetricsOut(job_id=job.id, status=job.status, epochs=rows)


def serve_artifact(session: ReadSessionDep, settings: SettingsDep, job_id: int, name: str) -> FileResponse:
    """A file the database says the job has, if it really lies inside that job's folder."""
    jobs.get_job(session, job_id)
    row = jobs.artifact_row(session, job_id, name)
    folder = (settings.artifact_dir / str(job_id)).resolve()
    path = jobs.artifact_path(settings.artifact_dir, job_id, row.name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise NotFound(f"job {job_id} has no artifact {name!r} on disk")
    return FileResponse(path, media_type=row.content_type, filename=Path(row.name).name)


@router.get("/jobs/{job_id}/curves.png", response_class=FileResponse, responses=PNG)
def get_curves(job_id: JobId, session: ReadSessionDep, settings: SettingsDep) -> FileResponse:
    """Training and test loss, and test accuracy, per epoch; redrawn after every epoch."""
    return serve_artifact(session, settings, job_id, "curves.png")


@router.get("/jobs/{job_id}/kernels", response_model=KernelList)
def list_kernels(job_id: JobId, session: ReadSessionDep) -> KernelList:
    """The kernel images drawn so far (conv1 and conv2; initial, trained, diff)."""
    jobs.get_job(session, job_id)
    kernels = []
    for row in jobs.artifact_rows(session, job_id, prefix="kernels/"):
        _, layer, file = row.name.split("/")
        kernels.append(
            KernelImageOut(
                layer=layer,
                stage=file.removesuffix(".png"),
                size=row.size,
                updated_at=row.updated_at,
                url=f"/jobs/{job_id}/{row.name}",
            )
        )
    return KernelList(job_id=job_id, kernels=kernels)


@router.get("/jobs/{job_id}/kernels/{layer}/{stage}.png", response_class=FileResponse, responses=PNG)
def get_kernel_image(
    job_id: JobId, layer: Layer, stage: Stage, session: ReadSessionDep, settings: SettingsDep
) -> FileResponse:
    """One kernel grid (conv1's 64 RGB kernels, or one conv2 filter's 64 slices): before, after, or the change."""
    return serve_artifact(session, settings, job_id, f"kernels/{layer}/{stage}.png")


@router.get("/jobs/{job_id}/artifacts", response_model=ArtifactList)
def list_artifacts(job_id: JobId, session: ReadSessionDep) -> ArtifactList:
    """Every file the job has written: name, size, content type and download URL."""
    jobs.get_job(session, job_id)
    items = [
        ArtifactOut(
            name=r.name,
            size=r.size,
            content_type=r.content_type,
            updated_at=r.updated_at,
            url=f"/jobs/{job_id}/artifacts/{r.name}",
        )
        for r in jobs.artifact_rows(session, job_id)
    ]
    return ArtifactList(job_id=job_id, artifacts=items)


@router.get(
    "/jobs/{job_id}/artifacts/{name:path}",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in ARTIFACT_TYPES}, "description": "The file, in its own content type"}},
)
def get_artifact(job_id: JobId, name: str, session: ReadSessionDep, settings: SettingsDep) -> FileResponse:
    """Download one artifact by the name `GET /jobs/{id}/artifacts` lists."""
    return serve_artifact(session, settings, job_id, name)


@public.get("/health", response_model=Health, responses={503: {"model": ErrorBody}})
def health(session: ReadSessionDep, settings: SettingsDep) -> Health:
    """Liveness, the database, the queue depth and the workers that heartbeated recently."""
    session.execute(text("SELECT 1"))
    workers = [
        WorkerOut.model_validate(w, from_attributes=True)
        for w in jobs.live_workers(session, settings.worker_alive_seconds)
    ]
    return Health(status="ok", database="ok", queue=jobs.queue_counts(session), workers=workers)
