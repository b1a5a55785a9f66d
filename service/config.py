"""Typed settings, read from the environment with safe local defaults."""

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the API and the worker read from the environment (see the README's table)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: str = "sqlite:///var/alexnet-jobs.db"
    artifact_dir: Path = Path("var/artifacts")
    # Where every job's files go: a local folder, or `s3://bucket/prefix` on any S3-compatible server (with the
    # AWS_* settings below). Empty: ARTIFACT_DIR, which it replaces.
    artifact_url: str = ""
    # This host's own working space. With an s3:// store a job's files are written here, then uploaded; the disk
    # checks watch this folder's volume. (With a local store they are written beside the artifacts instead.)
    scratch_dir: Path = Path("var/scratch")
    # The standard AWS variables, for an s3:// ARTIFACT_URL; empty ones are left to boto's own lookup (profiles,
    # instance roles). AWS_ENDPOINT_URL names a server other than AWS (MinIO, moto, Ceph…).
    aws_endpoint_url: str = ""
    aws_access_key_id: str = ""
    aws_secret_access_key: SecretStr = SecretStr("")
    aws_default_region: str = ""
    data_dir: Path = Path("var/data")
    # Pictures of a job's history, drawn on request (any epoch's kernels, the evolution GIFs) and kept a while.
    cache_dir: Path = Path("var/cache")
    host: str = "127.0.0.1"
    port: int = 8000
    allowed_hosts: str = Field(
        default="",
        description="Host names the API answers to besides loopback's (localhost, 127.0.0.1, ::1) and HOST's, "
        "comma-separated: `*.example.com` for every name under example.com, `*` for any (which gives up the "
        "protection against DNS-rebinding pages). A request naming another host in its Host header gets 400.",
    )
    # One line per request on stdout; it costs a busy API about a tenth of its time per read (see the README).
    access_log: bool = True
    # Empty means no authentication: the service is then for trusted networks only.
    api_token: str = ""
    # A request body larger than this is refused with 413; a job spec is a few hundred bytes.
    max_body_bytes: int = 64 * 1024
    # A worker that has not renewed its lease for this long loses its job to the reaper.
    lease_seconds: float = Field(default=60.0, gt=0)
    # Heartbeats renew the lease and publish progress; the spec promises progress at least every 5 s.
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    # How long an idle worker sleeps between looks at the queue.
    poll_seconds: float = Field(default=1.0, gt=0)
    # A worker is listed as alive in /health while its last heartbeat is younger than this.
    worker_alive_seconds: float = Field(default=30.0, gt=0)
    # A database that has not answered within this is treated as away: connecting, a statement, waiting for a
    # pooled connection and a whole request's database work each give up after it, and the API answers 503 with
    # Retry-After instead of hanging for as long as the database does. Every statement here takes milliseconds.
    db_timeout_seconds: float = Field(default=5.0, gt=0)
    # How many workers `python -m service.supervise` (`make run`) keeps running beside the API: a number (0: the API
    # alone, workers elsewhere), or `auto`: one per GPU, each seeing only its own, and one on a host without GPUs.
    workers: Annotated[int, Field(ge=0)] | Literal["auto"] = 1
    # The training engine's speed choices for a worker, `name=value,…` (worker/tuning.py; bench/NOTES.md says what
    # each was measured to give). Empty: the defaults.
    engine_tuning: str = ""


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings` and pass them in instead."""
    return Settings()


def describe_environment(meanings: Mapping[str, str]) -> str:
    """For `--help`: each named setting's environment variable, what it means and its default."""
    lines = ["environment variables (default in brackets; the README lists them all):"]
    for name, meaning in meanings.items():
        default = Settings.model_fields[name].default
        lines.append(f"  {name.upper():<21} {meaning} [{default if default != '' else 'none'}]")
    return "\n".join(lines)
