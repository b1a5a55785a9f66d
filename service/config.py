"""Typed settings, read from the environment with safe local defaults; each described once, on its field, which is
where every program's `--help` takes the words from."""

import textwrap
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The environment table in `--help`: names padded to this width, the whole line wrapped at the other.
NAME_WIDTH = 22
HELP_WIDTH = 118


class Settings(BaseSettings):
    """Everything the API, the worker and the supervisor read from the environment (see the README's table)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: str = Field(
        "sqlite:///var/alexnet-jobs.db",
        description="the job database, an SQLAlchemy URL (SQLite, or postgresql+psycopg://…)",
    )
    artifact_dir: Path = Field(
        Path("var/artifacts"), description="the folder the jobs' files go to, when no ARTIFACT_URL"
    )
    artifact_url: str = Field(
        "",
        description="where every job's files go: a folder, or s3://bucket/prefix on any S3-compatible server (with "
        "the AWS_* settings); replaces ARTIFACT_DIR",
    )
    scratch_dir: Path = Field(
        Path("var/scratch"),
        description="this host's working space: with an s3:// store a job's files are written here, then uploaded, "
        "and the disk checks watch its volume",
    )
    aws_endpoint_url: str = Field("", description="an S3-compatible server other than AWS (MinIO, moto, Ceph…)")
    aws_access_key_id: str = Field(
        "", description="for an s3:// ARTIFACT_URL; empty: boto's own lookup (profiles, roles)"
    )
    aws_secret_access_key: SecretStr = Field(SecretStr(""), description="goes with AWS_ACCESS_KEY_ID")
    aws_default_region: str = Field("", description="the bucket's region; empty: boto's own lookup")
    data_dir: Path = Field(Path("var/data"), description="where CIFAR-10 is read from, and downloaded to")
    cache_dir: Path = Field(
        Path("var/cache"),
        description="pictures of a job's history drawn on request (any epoch's kernels, the evolution GIFs), kept "
        "a while",
    )
    host: str = Field("127.0.0.1", description="the address the API listens on")
    port: int = Field(8000, description="the port the API listens on")
    allowed_hosts: str = Field(
        default="",
        description="Host names the API answers to besides loopback's (localhost, 127.0.0.1, ::1) and HOST's, "
        "comma-separated: `*.example.com` for every name under example.com, `*` for any (which gives up the "
        "protection against DNS-rebinding pages). A request naming another host in its Host header gets 400.",
    )
    # It costs a busy API about a tenth of its time per read (see the README).
    access_log: bool = Field(True, description="one line per request on stdout")
    api_token: str = Field(
        "",
        description="the bootstrap admin's bearer token (users added with `python -m service.users` have their own), "
        "which every request must carry, as a bearer token or the dashboard's sign-in cookie, except these, open to "
        "all: /health (saying only whether the service is up), /openapi.json, /docs, /redoc, /session (signing in), "
        "and the dashboard's pages and scripts (/, /ui/…), which hold no data; with neither this nor any user, no "
        "authentication, for trusted networks only",
    )
    # A class of 30 on one server: enough for a student's small sweep, not enough to hold a day's queue alone.
    max_active_jobs: int = Field(
        16, ge=1, description="a user's default quota of active (queued + running) jobs; an admin can set each user's"
    )
    max_sweep_jobs: int = Field(
        16, ge=1, le=64, description="a user's default cap on one sweep's size (jobs); an admin can set each user's"
    )
    # A working day: long enough not to nag, short enough that a forgotten browser is signed out by tomorrow.
    session_hours: float = Field(12.0, gt=0, description="how long a dashboard sign-in lasts")
    # A job spec is a few hundred bytes.
    max_body_bytes: int = Field(64 * 1024, description="a request body larger than this is refused with 413")
    lease_seconds: float = Field(
        60.0, gt=0, description="a job whose worker has not renewed its lease for this long is taken back by another"
    )
    # The spec promises progress at least every 5 s.
    heartbeat_seconds: float = Field(
        2.0, gt=0, description="how often a running job's lease is renewed and its progress published"
    )
    # A checkpoint is written while the next steps train: training waits only for the copy of the weights and the
    # optimizer's state to host memory (684 MB: 1.3 s on a busy 2-core host), the write (8 s there) runs beside it.
    # Every 5 min that is 0.4 % of training time, 8 GB written an hour, and a run killed between two checkpoints loses
    # 2.5 min of work on average (the README's Reliability section says how this was weighed).
    checkpoint_seconds: float = Field(
        300.0,
        gt=0,
        description="a running job also checkpoints mid-epoch once this long has passed since its last checkpoint, "
        "so that a worker killed more often than an epoch lasts still gets somewhere",
    )
    poll_seconds: float = Field(
        1.0,
        gt=0,
        description="how long an idle worker sleeps between looks at the queue when nothing can wake it (SQLite, or "
        "no LISTEN connection to Postgres)",
    )
    worker_alive_seconds: float = Field(
        30.0,
        gt=0,
        description="a worker is alive (listed by /health, counted by the claims) while its last heartbeat is "
        "younger than this",
    )
    # Every statement here takes milliseconds.
    db_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="a database silent this long is away: connecting, a statement, waiting for a pooled connection "
        "and a request's database work each give up, and the API answers 503 with Retry-After",
    )
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        1,
        description="how many workers `python -m service.supervise` keeps beside the API: a number (0: the API "
        "alone), or `auto`: one per GPU, each seeing only its own, and one on a host without GPUs",
    )
    engine_tuning: str = Field(
        "",
        description="the training engine's speed choices, name=value,… (worker/tuning.py; bench/NOTES.md says what "
        "each gave); empty: the defaults",
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings` and pass them in instead."""
    return Settings()


def _default(name: str) -> str:
    """A field's default as one would write it in the environment; `none` for an empty one."""
    value = Settings.model_fields[name].default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else "none"


def describe_environment(names: Iterable[str]) -> str:
    """For a program's `--help`: the environment variable of each setting it reads (by field name), what the field's
    description says it means, and its default."""
    lines = ["environment variables (default in brackets; the README lists them all):"]
    indent = " " * (2 + NAME_WIDTH)
    for name in names:
        description = Settings.model_fields[name].description
        if not description:
            raise ValueError(f"Settings.{name} has no description to show")
        text = f"  {name.upper():<{NAME_WIDTH}}{description} [{_default(name)}]"
        lines += textwrap.wrap(text, HELP_WIDTH, subsequent_indent=indent, break_on_hyphens=False)
    return "\n".join(lines)
