"""A sweep's response bodies: its jobs, its leaderboard, the list of sweeps."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from service.models import Status
from service.spec import JobSpec


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
    owner: str | None = Field(None, description="Who submitted it; null on a service without sign-in.")
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
    owner: str | None = Field(None, description="Who submitted it; null on a service without sign-in.")
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
