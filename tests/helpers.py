"""What the test files share: settings, databases migrated by Alembic, jobs and files made directly, error checks."""

import atexit
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from bench.processes import migrate, wait_for
from service import artifacts, jobs, queries
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Job
from service.spec import JobSpec
from service.storage import make_store
from worker.publish import ArtifactWriter

Sessions = sessionmaker[Session]

# A job small enough to train in seconds on 2 cores (10 steps an epoch), long enough to be caught mid-epoch. On the
# CPU even where a GPU is present: a GPU runs it in well under a second, too fast for a test to act mid-job.
SMALL_JOB: dict[str, Any] = {
    "dataset": "synthetic",
    "image_size": 64,
    "batch_size": 32,
    "train_samples": 320,
    "test_samples": 64,
    "device": "cpu",
}
# SMALL_JOB's 10 steps an epoch, each 20–45 % cheaper (measured on two shared cores, fp32): a batch of 8 instead of
# 32 cuts the fully connected layers' work, not the 57 M parameters' update, which is most of what remains. For
# scenarios about what happens around a job (crashes, disks, buckets), where how much it learns does not matter.
LIGHT_JOB: dict[str, Any] = {**SMALL_JOB, "batch_size": 8, "train_samples": 80, "test_samples": 32}


# ---------------------------------------------------------------- settings and databases


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    """Settings on `database_url`, with files under `tmp_path` and timings short enough for tests."""
    values: dict[str, object] = {
        "database_url": database_url,
        "artifact_dir": tmp_path / "artifacts",
        "data_dir": tmp_path / "data",
        "cache_dir": tmp_path / "cache",
        "lease_seconds": 30.0,
        "heartbeat_seconds": 0.5,
        "poll_seconds": 0.2,
        # A loaded 2-core test machine can take seconds for what takes milliseconds: only the tests of database
        # trouble set a short database timeout.
        "db_timeout_seconds": 30.0,
        # The host name Starlette's TestClient sends; loopback's and HOST's are served anyway.
        "allowed_hosts": "testserver",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def sqlite_database(folder: Path) -> str:
    """A new SQLite file in `folder`, migrated; its URL. A copy of one database that Alembic migrated in this
    process: a migration costs a few tenths of a second, and hundreds of tests each start with a database."""
    return copy_sqlite(_migrated_sqlite(), folder)


def copy_sqlite(source: Path, folder: Path) -> str:
    """A copy of the SQLite file `source` as `folder`/jobs.db; its URL."""
    path = folder / "jobs.db"
    # SQLite's backup copies a consistent image whatever the source's journal holds (a WAL not yet checkpointed).
    with closing(sqlite3.connect(source)) as original, closing(sqlite3.connect(path)) as copy:
        original.backup(copy)
    return f"sqlite:///{path}"


@cache
def _migrated_sqlite() -> Path:
    """An empty SQLite database migrated by Alembic, once per process, in a folder removed when the process exits."""
    folder = tempfile.TemporaryDirectory(prefix="alexnet-jobs-schema-")
    atexit.register(folder.cleanup)
    path = Path(folder.name) / "jobs.db"
    migrate(f"sqlite:///{path}")
    return path


@contextmanager
def postgres_schema(server: str) -> Iterator[str]:
    """A fresh schema on the Postgres `server`, migrated, dropped afterwards: no rows pile up across tests."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = f"{server}?options=-csearch_path%3D{schema}"
            migrate(url)
            yield url
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


# ---------------------------------------------------------------- jobs and their files, made directly


def queue_jobs(sessions: Sessions, n: int = 1, /, **spec: Any) -> list[int]:
    """Queue `n` jobs of `spec` (every other field its default) as POST /jobs does; their ids, oldest first."""
    with transaction(sessions) as s:
        return [jobs.create_job(s, JobSpec.model_validate(spec)).id for _ in range(n)]


class Db:
    """A test's own view of the jobs table, for scenarios whose workers run as processes of their own."""

    def __init__(self, settings: Settings, spec: dict[str, Any] | None = None) -> None:
        self.sessions = make_sessionmaker(make_engine(settings.database_url))
        self.spec = spec or {}

    def submit(self, **spec: object) -> int:
        """Queue one job of the base spec, with `spec`'s fields changed."""
        (job_id,) = queue_jobs(self.sessions, **{**self.spec, **spec})
        return job_id

    def job(self, job_id: int) -> Job:
        with transaction(self.sessions) as s:
            return s.get_one(Job, job_id)

    def epochs(self, job_id: int) -> list[tuple[int, float]]:
        with transaction(self.sessions) as s:
            return [(m.epoch, m.train_loss) for m in s.get_one(Job, job_id).metrics]

    def kernel_history(self, job_id: int) -> list[int]:
        """The epochs whose kernel numbers the job published, in order, each as often as it is listed."""
        with transaction(self.sessions) as s:
            rows = queries.artifact_rows(s, job_id, prefix=artifacts.KERNEL_HISTORY_PREFIX)
            return [e for r in rows if (e := artifacts.parse_kernel_history(r.name)) is not None]

    def details(self, job_id: int) -> list[dict]:
        """Each epoch's further measurements, in epoch order."""
        with transaction(self.sessions) as s:
            return [m.details for m in s.get_one(Job, job_id).metrics]

    def when(self, job_id: int, what: str, test, timeout: float = 300) -> Job:
        def check() -> Job | None:
            job = self.job(job_id)
            return job if test(job) else None

        return wait_for(check, timeout, what)


def publish_artifact(settings: Settings, sessions: Sessions, claim: jobs.Claim, name: str, data: bytes) -> Path:
    """Publish `data` as the claimed job's artifact `name` the way a worker does; the file the API now serves."""
    store = make_store(settings)
    ArtifactWriter(store, sessions, claim).publish(name, lambda path: path.write_bytes(data))
    with transaction(sessions) as s:
        path = store.local_path(queries.artifact_row(s, claim.job_id, name).key)
    assert path is not None
    return path


# ---------------------------------------------------------------- the API's answers


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an error of this status and code, in the one error shape; its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def total_jobs(client: httpx.Client) -> int:
    """How many jobs GET /jobs counts."""
    return int(client.get("/jobs").json()["total"])
