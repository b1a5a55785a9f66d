"""Shared fixtures: real databases migrated by Alembic (SQLite files, and Postgres schemas), real settings."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from service.app import create_app
from service.config import Settings
from tests.processes import stop_all_started

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema, as `alembic upgrade head` does."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def _postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except OperationalError:
        return False


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Whatever processes a test started are gone when it ends, passed or failed."""
    yield
    stop_all_started()


@pytest.fixture(scope="session")
def postgres() -> str:
    """The Postgres server's URL; the tests needing it are skipped where none runs, but never on CI."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    return POSTGRES_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(url)
    return url


@pytest.fixture
def postgres_url(postgres: str) -> Iterator[str]:
    """A fresh schema in the test database, migrated, dropped afterwards: no rows pile up across tests."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres}?options=-csearch_path%3D{schema}"
    migrate(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on Postgres."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "artifact_dir": tmp_path / "artifacts",
        "data_dir": tmp_path / "data",
        "lease_seconds": 30.0,
        "heartbeat_seconds": 0.5,
        "poll_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return make_settings(tmp_path, sqlite_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
