"""Read queries: one job, pages of jobs, metrics, the queue, workers, artifacts, sweeps.

The API's reads go through SQLAlchemy Core on the session's connection and return rows (read-only, with the
tables' column names as attributes): building ORM objects cost a one-row read three times the query itself.
`get_job` returns the ORM object, for the state transitions that change it.
"""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.models import FINISHED, Artifact, EpochMetric, Job, Status, Sweep, Worker, utcnow

# Largest id a BIGINT can hold; anything above cannot name a job.
MAX_ID = 2**63 - 1

# What a comparison or a leaderboard reads of an epoch: never the bulky `details`.
SERIES_FIELDS = ("job_id", "epoch", "train_loss", "test_loss", "test_accuracy")
JOBS, METRICS, ARTIFACTS, WORKERS, SWEEPS = (m.__table__ for m in (Job, EpochMetric, Artifact, Worker, Sweep))


def _rows(session: Session, query: Select[Any]) -> Sequence[Row[Any]]:
    return session.connection().execute(query).all()


def _not_found(job_id: int) -> NotFound:
    return NotFound(f"job {job_id} does not exist")


def get_job(session: Session, job_id: int) -> Job:
    """The job as an ORM object, or NotFound (also for ids too large to be any job's)."""
    job = session.get(Job, job_id) if 1 <= job_id <= MAX_ID else None
    if job is None:
        raise _not_found(job_id)
    return job


def job_row(session: Session, job_id: int) -> Row[Any]:
    """The job's row, or NotFound (also for ids too large to be any job's)."""
    rows = _rows(session, select(JOBS).where(JOBS.c.id == job_id)) if 1 <= job_id <= MAX_ID else []
    if not rows:
        raise _not_found(job_id)
    return rows[0]


def list_jobs(
    session: Session,
    status: Status | None,
    limit: int,
    offset: int,
    sweep_id: int | None = None,
    owners: tuple[str | None] | None = None,
    count: bool = True,
) -> tuple[Sequence[Row[Any]], int | None]:
    """A page of jobs (only one status's, one sweep's, one owner's if given: `(None,)` for jobs of nobody), newest
    first, and (with `count`) how many match in all."""
    where = _job_filter(status, sweep_id, owners)
    rows = _rows(session, select(JOBS).where(*where).order_by(JOBS.c.id.desc()).limit(limit).offset(offset))
    return rows, count_jobs(session, status, sweep_id, owners) if count else None


def count_jobs(
    session: Session, status: Status | None, sweep_id: int | None = None, owners: tuple[str | None] | None = None
) -> int:
    """How many jobs match the list's filters."""
    query = select(func.count()).select_from(JOBS).where(*_job_filter(status, sweep_id, owners))
    return int(session.connection().execute(query).scalar() or 0)


def _job_filter(status: Status | None, sweep_id: int | None, owners: tuple[str | None] | None) -> list[Any]:
    where: list[Any] = [JOBS.c.status == status] if status else []
    if sweep_id is not None:
        where.append(JOBS.c.sweep_id == sweep_id)
    if owners is not None:
        (owner,) = owners
        where.append(JOBS.c.owner.is_(None) if owner is None else JOBS.c.owner == owner)
    return where


def epoch_rows(session: Session, job_id: int) -> Sequence[Row[Any]]:
    """The job's per-epoch measurements, in epoch order."""
    return _rows(session, select(METRICS).where(METRICS.c.job_id == job_id).order_by(METRICS.c.epoch))


def latest_epochs(session: Session, job_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """Each job's latest epoch (its scalar measurements only), by job id; jobs with none are left out."""
    last = (
        select(METRICS.c.job_id, func.max(METRICS.c.epoch).label("epoch"))
        .where(METRICS.c.job_id.in_(job_ids))
        .group_by(METRICS.c.job_id)
        .subquery()
    )
    query = select(*(METRICS.c[k] for k in SERIES_FIELDS)).join(
        last, (METRICS.c.job_id == last.c.job_id) & (METRICS.c.epoch == last.c.epoch)
    )
    return {r.job_id: r for r in _rows(session, query)}


def epoch_series(session: Session, job_ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    """Each job's epochs in order (their scalar measurements only, not `details`), by job id."""
    query = select(*(METRICS.c[k] for k in SERIES_FIELDS)).where(METRICS.c.job_id.in_(job_ids))
    series: dict[int, list[Row[Any]]] = {job_id: [] for job_id in job_ids}
    for row in _rows(session, query.order_by(METRICS.c.job_id, METRICS.c.epoch)):
        series[row.job_id].append(row)
    return series


def jobs_rows(session: Session, job_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """The rows of those of `job_ids` that exist, by id."""
    ids = [i for i in job_ids if 1 <= i <= MAX_ID]
    return {r.id: r for r in _rows(session, select(JOBS).where(JOBS.c.id.in_(ids)))} if ids else {}


def sweep_row(session: Session, sweep_id: int) -> Row[Any]:
    """The sweep's row, or NotFound (also for ids too large to be any sweep's)."""
    rows = _rows(session, select(SWEEPS).where(SWEEPS.c.id == sweep_id)) if 1 <= sweep_id <= MAX_ID else []
    if not rows:
        raise NotFound(f"sweep {sweep_id} does not exist")
    return rows[0]


def list_sweeps(session: Session, limit: int, offset: int) -> tuple[Sequence[Row[Any]], int]:
    """A page of sweeps, newest first, and how many there are."""
    total = session.connection().execute(select(func.count()).select_from(SWEEPS)).scalar() or 0
    return _rows(session, select(SWEEPS).order_by(SWEEPS.c.id.desc()).limit(limit).offset(offset)), total


def sweep_jobs(session: Session, sweep_ids: Sequence[int]) -> dict[int, list[Row[Any]]]:
    """The jobs of each of `sweep_ids`, oldest first (the grid's order), by sweep id."""
    jobs: dict[int, list[Row[Any]]] = {sweep_id: [] for sweep_id in sweep_ids}
    for row in _rows(session, select(JOBS).where(JOBS.c.sweep_id.in_(sweep_ids)).order_by(JOBS.c.id)):
        jobs[row.sweep_id].append(row)
    return jobs


def queue_counts(session: Session) -> dict[str, int]:
    """How many jobs are in each state."""
    counts = {r.status: r.n for r in _rows(session, select(JOBS.c.status, func.count().label("n")).group_by("status"))}
    return {str(status): counts.get(status, 0) for status in Status}


def live_workers(session: Session, alive_seconds: float) -> Sequence[Row[Any]]:
    """Workers that heartbeated recently and have not said goodbye."""
    since = utcnow() - timedelta(seconds=alive_seconds)
    alive = (WORKERS.c.last_seen_at >= since) & WORKERS.c.stopped_at.is_(None)
    return _rows(session, select(WORKERS).where(alive).order_by(WORKERS.c.id))


def artifact_rows(session: Session, job_id: int, prefix: str = "") -> Sequence[Row[Any]]:
    """The artifacts a job has, by name."""
    query = select(ARTIFACTS).where(ARTIFACTS.c.job_id == job_id)
    if prefix:
        query = query.where(ARTIFACTS.c.name.startswith(prefix, autoescape=True))
    return _rows(session, query.order_by(ARTIFACTS.c.name))


def artifact_row(session: Session, job_id: int, name: str, status: str | None = None) -> Row[Any]:
    """One artifact's row, or NotFound saying it is not there: yet, or (given the job's `status`, once finished)
    ever."""
    rows = _rows(session, select(ARTIFACTS).where(ARTIFACTS.c.job_id == job_id, ARTIFACTS.c.name == name))
    if not rows:
        if status in FINISHED:
            raise NotFound(f"job {job_id} has no artifact {name!r}, and will not have one: it is {status}")
        raise NotFound(f"job {job_id} has no artifact {name!r} (yet)")
    return rows[0]


def epoch_not_found(job_id: int, epoch: int, have: Sequence[int]) -> NotFound:
    """NotFound for an epoch a job does not have, naming those it has."""
    listed = ", ".join(map(str, have)) or "none yet"
    return NotFound(f"job {job_id} has no epoch {epoch}; it has epochs {listed}")


def evaluated_epoch(session: Session, job_id: int, epoch: int | None) -> tuple[Row[Any], Row[Any]]:
    """The job, and its epoch `epoch` (the latest when None) with the test set's confusion matrix; else NotFound."""
    job = job_row(session, job_id)
    rows = [r for r in epoch_rows(session, job_id) if (r.details or {}).get("confusion")]
    if epoch is None and not rows:
        raise NotFound(f"job {job_id} has no confusion matrix yet: it comes with each finished epoch")
    chosen = rows[-1] if epoch is None else next((r for r in rows if r.epoch == epoch), None)
    if chosen is None:
        raise epoch_not_found(job_id, epoch or 0, [r.epoch for r in rows])
    return job, chosen


def epochs_recorded(session: Session) -> int:
    """How many epochs all kept jobs have recorded."""
    return session.connection().execute(select(func.count()).select_from(METRICS)).scalar() or 0


def worker_speeds(session: Session, alive_seconds: float) -> list[tuple[str, float]]:
    """Each live worker running a job, with that job's last epoch's training images/s (if it has finished one)."""
    since = utcnow() - timedelta(seconds=alive_seconds)
    last = (
        select(METRICS.c.images_per_second)
        .where(METRICS.c.job_id == WORKERS.c.job_id)
        .order_by(METRICS.c.epoch.desc())
        .limit(1)
        .scalar_subquery()
    )
    alive = (WORKERS.c.last_seen_at >= since) & WORKERS.c.stopped_at.is_(None) & WORKERS.c.job_id.is_not(None)
    rows = _rows(session, select(WORKERS.c.id, last.label("speed")).where(alive).order_by(WORKERS.c.id))
    return [(r.id, float(r.speed)) for r in rows if r.speed is not None]
