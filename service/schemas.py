"""The API's request and response bodies (Pydantic), kept apart from the tables."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.artifacts import Layer, Stage
from service.models import Status
from service.spec import JobSpec


class Progress(BaseModel):
    """How far a job has come; refreshed by the worker's heartbeat while it runs."""

    epochs_completed: int
    epochs_total: int
    steps_done: int
    steps_total: int | None
    fraction: float = Field(description="Training steps done / all training steps, 0–1.")
    eta_seconds: float | None
    updated_at: datetime | None


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: int
    name: str | None
    status: Status
    spec: JobSpec
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    device: str | None
    parameter_count: int | None
    attempts: int
    cancel_requested: bool
    progress: Progress
    links: dict[str, str]


class JobList(BaseModel):
    """A page of jobs, newest first."""

    items: list[JobOut]
    total: int
    limit: int
    offset: int


class EpochMetricOut(BaseModel):
    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float
    images_per_second: float


class MetricsOut(BaseModel):
    """One row per completed epoch."""

    job_id: int
    status: Status
    epochs: list[EpochMetricOut]


class ArtifactOut(BaseModel):
    name: str
    size: int
    content_type: str
    updated_at: datetime
    url: str


class ArtifactList(BaseModel):
    job_id: int
    artifacts: list[ArtifactOut]


class KernelImageOut(BaseModel):
    layer: Layer
    stage: Stage
    size: int
    updated_at: datetime
    url: str


class KernelList(BaseModel):
    """The kernel images drawn so far."""

    job_id: int
    kernels: list[KernelImageOut]


class WorkerOut(BaseModel):
    id: str
    hostname: str
    pid: int
    device: str
    bf16_native: bool = Field(description="bf16 runs natively on this worker's device (else `bf16` jobs go elsewhere).")
    last_seen_at: datetime
    job_id: int | None


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    queue: dict[str, int]
    workers: list[WorkerOut]


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable: not_found, conflict, invalid_request, …")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorDetail
