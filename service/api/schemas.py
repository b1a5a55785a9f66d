"""The API's request and response bodies (Pydantic), kept apart from the tables."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.api.resume_schemas import CheckpointOut
from service.artifacts import Layer, Stage
from service.contracts import EpochScalars, WeightChange
from service.errors import Detail
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


class EstimateOut(BaseModel):
    """How long a job trains (training and evaluation; loading its data and the first pictures come on top), from
    the live workers' measured epochs scaled to its spec, on the fastest of them."""

    seconds: float | None = Field(description="None when no live worker has measured an epoch yet.")
    basis: str = Field(description="Which measured epoch it is scaled from.")
    warning: str | None = Field(description="Set when the job is long (over 10 minutes) or no worker is running.")


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
    waiting_for: str | None = Field(
        None, description="Why a queued job is held back, when it is by more than a busy queue (e.g. a full disk)."
    )
    device: str | None
    parameter_count: int | None
    attempts: int
    cancel_requested: bool
    sweep_id: int | None = Field(description="The sweep that queued it, if one did.")
    owner: str | None = Field(None, description="Who submitted it; null on a service without sign-in.")
    progress: Progress
    links: dict[str, str]
    estimate: EstimateOut | None = Field(
        None, description="Only in the answer of POST /jobs (and …/rerun): how long the job is expected to train."
    )


class JobList(BaseModel):
    """A page of jobs, newest first."""

    items: list[JobOut]
    total: int
    limit: int
    offset: int


class EpochMetricOut(EpochScalars):
    """One epoch: its losses, accuracy, time and speed, with per-class accuracy and each layer's weight change."""

    model_config = ConfigDict(extra="ignore")  # an answer, not a message in: no schema of refused extras

    per_class_accuracy: dict[str, float] | None = Field(
        None, description="Each class's test accuracy (0–1), by class name.", examples=[{"airplane": 0.61, "cat": 0.32}]
    )
    weight_change: dict[str, WeightChange] | None = Field(
        None,
        description="For each weight layer (torchvision's names: features.0 is conv1, classifier.6 the last).",
        examples=[{"features.0": {"from_initial": 0.021, "from_previous": 0.004}}],
    )


class StepPoint(BaseModel):
    step: int = Field(description="Training step, counted from 1 over the whole job (the last step of a bucket).")
    epoch: int
    train_loss: float = Field(description="That step's loss, or the mean over the bucket's steps.")


class StepsOut(BaseModel):
    """The training loss per step; averaged into buckets when there are more steps than `max_points`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": 1,
                    "steps_total": 120,
                    "points": [
                        {"step": 30, "epoch": 1, "train_loss": 2.04},
                        {"step": 60, "epoch": 2, "train_loss": 0.48},
                    ],
                }
            ]
        }
    )

    job_id: int
    steps_total: int | None
    points: list[StepPoint]


class ConfusionOut(BaseModel):
    """Test-set predictions after one epoch: matrix[true][predicted] counts, in the order of `classes`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"job_id": 1, "epoch": 1, "classes": ["cat", "dog"], "matrix": [[40, 10], [12, 38]]}]
        }
    )

    job_id: int
    epoch: int
    classes: list[str]
    matrix: list[list[int]]


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
    checkpoint: CheckpointOut | None = Field(
        None, description="What `POST …/resume` (cancelled, failed) or `…/continue` (succeeded) goes on from."
    )


class KernelImageOut(BaseModel):
    layer: Layer
    stage: Stage
    size: int
    updated_at: datetime
    url: str


class KernelList(BaseModel):
    """The kernel images drawn so far, and the epochs any of them can be drawn at (`?epoch=`)."""

    job_id: int
    kernels: list[KernelImageOut]
    epochs: list[int] = Field(description="0 is the initialisation; then each finished epoch.", examples=[[0, 1, 2]])


class SeriesPoint(BaseModel):
    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float = Field(description="0–1.")


class CompareJob(BaseModel):
    """One compared job: its spec, what sets it apart from the others, and its epochs."""

    id: int
    name: str | None
    status: Status
    spec: JobSpec
    differs: dict[str, Any] = Field(description="Its values of the spec fields that differ between the jobs.")
    label: str = Field(description="Those values in a few words, e.g. `sgd lr 1e-2`; the chart's legend says this.")
    epochs: list[SeriesPoint]


class CompareOut(BaseModel):
    """Jobs side by side, in the order asked for."""

    differing: list[str] = Field(description="The spec fields whose values are not the same in all the jobs.")
    jobs: list[CompareJob]
    links: dict[str, str]


class Prediction(BaseModel):
    # `class` is a Python keyword: the field has another name in Python, and is always written out as `class`.
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    class_: str = Field(alias="class", description="A class name, as the job's dataset names it.")
    probability: float = Field(description="0–1; the softmax of the network's output.")


class PredictionOut(BaseModel):
    """What a trained job makes of an image: its five most likely classes, best first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": 1,
                    "predictions": [
                        {"class": "cat", "probability": 0.71},
                        {"class": "dog", "probability": 0.18},
                        {"class": "deer", "probability": 0.05},
                        {"class": "frog", "probability": 0.03},
                        {"class": "bird", "probability": 0.01},
                    ],
                }
            ]
        }
    )

    job_id: int
    predictions: list[Prediction]


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable: not_found, conflict, invalid_request, …")
    message: str
    details: list[Detail] | None = Field(None, description="For an invalid request: each thing wrong with it.")


class ErrorBody(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorDetail
