"""A sweep's request and response bodies: a base spec and a grid in; its jobs and leaderboard out."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from service.models import Status
from service.spec import JobSpec

# The most jobs one sweep queues: 64 small jobs are already hours on a CPU, and a grid that makes more (ten values
# for each of three fields is 1,000) is more likely a slip than a plan.
MAX_JOBS = 64
# Each grid key is a spec field, and its values are what that field accepts: the published schema says so exactly,
# so that a body the schema allows is a sweep the API queues (unless it makes more than MAX_JOBS jobs).
_FIELD_SCHEMAS = JobSpec.model_json_schema()["properties"]
GRID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Spec field → the values it takes; the sweep queues one job per combination (the cartesian "
    "product), each field's values taking the place of the base's.",
    "properties": {
        name: {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_JOBS,
            "uniqueItems": True,
            "items": {k: v for k, v in schema.items() if k not in ("default", "title", "description")},
        }
        for name, schema in _FIELD_SCHEMAS.items()
    },
    "examples": [{"optimizer": ["adam", "sgd"], "learning_rate": [0.001, 0.0001]}],
}


class SweepIn(BaseModel):
    """What to sweep: the spec every job starts from, and the values to try for some of its fields."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, max_length=200, pattern=r"^[^\x00]*$", description="A free label.")
    base: JobSpec = Field(
        default_factory=JobSpec, description="The spec each job starts from; defaults as in POST /jobs."
    )
    # Any values here: each combination is validated as a whole spec, and an invalid one is named in the 422.
    grid: Annotated[dict[str, list[Any]], WithJsonSchema(GRID_SCHEMA)] = Field(default_factory=dict)


class SweepJobOut(BaseModel):
    """One of a sweep's jobs: the grid values it runs with and how far it has got."""

    id: int
    status: Status
    params: dict[str, Any] = Field(description="Its values of the grid's fields.")
    label: str = Field(description="Those values in a few words, e.g. `sgd lr 1e-2`.")
    epochs_completed: int
    test_accuracy: float | None = Field(description="After its latest epoch (its final one once it has finished).")
    error: str | None
    url: str


class LeaderboardEntry(BaseModel):
    """A job that has finished at least one epoch, ranked by its latest test accuracy."""

    rank: int
    job_id: int
    status: Status
    params: dict[str, Any]
    label: str
    epoch: int = Field(description="The epoch the numbers are from: the job's latest.")
    test_accuracy: float
    test_loss: float


class SweepOut(BaseModel):
    """A sweep: what it asked for, its jobs, and its leaderboard (best first)."""

    id: int
    name: str | None
    created_at: datetime
    base: JobSpec
    grid: dict[str, list[Any]]
    counts: dict[str, int] = Field(description="How many of its jobs are in each status.")
    finished: bool = Field(description="Every job has succeeded, failed or been cancelled.")
    jobs: list[SweepJobOut]
    leaderboard: list[LeaderboardEntry]
    links: dict[str, str]


class SweepSummary(BaseModel):
    """A sweep in a list: its jobs counted by status."""

    id: int
    name: str | None
    created_at: datetime
    grid: dict[str, list[Any]]
    jobs_total: int
    counts: dict[str, int]
    finished: bool
    url: str


class SweepList(BaseModel):
    """A page of sweeps, newest first."""

    items: list[SweepSummary]
    total: int
    limit: int
    offset: int
