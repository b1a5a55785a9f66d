"""The tables: jobs, their per-epoch metrics and artifacts, workers, sweeps, people and their sign-ins."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so Alembic can alter them on every backend (SQLite batch mode needs the names).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Ids that leave the database (a job's, a sweep's, an event's) are never handed out twice, not even the deleted newest
# row's (SQLite's default without AUTOINCREMENT): a bookmark or a Last-Event-ID must never come to mean another row.
NEVER_REUSED_IDS = {"sqlite_autoincrement": True}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Status(StrEnum):
    """Where a job is: queued → running → succeeded | failed | cancelled (running → queued on a retry)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Job(Base):
    """One training job. Its status is written only by `service.jobs`."""

    __tablename__ = "jobs"
    # What a fair claim asks of each person with queued jobs: how many of theirs run, and when they last had a turn.
    __table_args__ = (
        Index("ix_jobs_owner_status", "owner", "status"),
        Index("ix_jobs_owner_started_at", "owner", "started_at"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Copied out of `spec` so that claiming can filter on it in SQL.
    device_request: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(String(64))
    parameter_count: Mapped[int | None] = mapped_column(BigInteger)

    epochs_completed: Mapped[int] = mapped_column(Integer, default=0)
    steps_done: Mapped[int] = mapped_column(BigInteger, default=0)
    steps_total: Mapped[int | None] = mapped_column(BigInteger)
    eta_seconds: Mapped[float | None]
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # Runs in a row from the current checkpoint (a new one resets it); `max_attempts` of them and the job fails.
    runs_without_progress: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # The checkpoint a retry resumes from: a file name under the job's `checkpoints/` folder.
    checkpoint: Mapped[str | None] = mapped_column(String(100))
    # Why a queued job is not running yet, when something outside it holds it back (a full disk).
    waiting_for: Mapped[str | None] = mapped_column(Text)

    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The sweep that queued this job, if one did.
    sweep_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("sweeps.id"), index=True)
    # Who submitted it (a user's name); None when the service runs without sign-in.
    owner: Mapped[str | None] = mapped_column(String(64))

    metrics: Mapped[list["EpochMetric"]] = relationship(
        back_populates="job", order_by="EpochMetric.epoch", cascade="all, delete-orphan"
    )


class EpochMetric(Base):
    """What one epoch measured; (job_id, epoch) is unique, so a retried epoch cannot appear twice."""

    __tablename__ = "epoch_metrics"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_loss: Mapped[float]
    test_loss: Mapped[float]
    test_accuracy: Mapped[float]
    seconds: Mapped[float]
    images_per_second: Mapped[float]
    # Every other per-epoch measurement, by name: a new one is a new key, not a new column and migration.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    job: Mapped[Job] = relationship(back_populates="metrics")


class Artifact(Base):
    """A file a worker wrote under the job's folder; downloads are looked up here, never built from a URL."""

    __tablename__ = "artifacts"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Where the store keeps the current version (see service.storage); never built from a request.
    key: Mapped[str] = mapped_column(String(400))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobEvent(Base):
    """One thing that happened to a job, in order: what its event stream sends and its log keeps.

    The id is the event's id on the stream: increasing, so a client that reconnects with `Last-Event-ID` gets
    exactly the events after it. Written in the transaction that made the change, so no event is ever missed.
    """

    __tablename__ = "job_events"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # status, progress, epoch, artifact, log or end (see service.events.Kind)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Worker(Base):
    """A worker process, as it last reported itself."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(64))
    # bf16 is native on `device` (a CUDA GPU, or a CPU with AVX-512 BF16 or AMX), not emulated.
    bf16_native: Mapped[bool] = mapped_column(default=False, server_default=false())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    job_id: Mapped[int | None] = mapped_column(BigId)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the worker is not taking jobs while alive (no room on its artifact volume); None when it is.
    problem: Mapped[str | None] = mapped_column(Text)


class Sweep(Base):
    """A grid of specs queued together as jobs (`jobs.sweep_id`); what it asked for, kept as it was sent."""

    __tablename__ = "sweeps"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # The base spec as sent, and the grid: spec field → the values it takes.
    base: Mapped[dict[str, Any]] = mapped_column(JSON)
    grid: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(64), index=True)


class User(Base):
    """A person who may use the service, with a role; their token is kept only as a digest (see service.users)."""

    __tablename__ = "users"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Never reused, even once revoked: it names the owner of their jobs and sweeps.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_active_jobs: Mapped[int | None] = mapped_column(Integer)
    max_sweep_jobs: Mapped[int | None] = mapped_column(Integer)  # None for these two: the settings' defaults


class SignInSession(Base):
    """A dashboard sign-in: the cookie's digest, the digest of the token that signed in (so that rotating or
    revoking the token, or changing API_TOKEN, ends every session it opened), and when it ends."""

    __tablename__ = "sessions"

    id_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
