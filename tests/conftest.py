"""Shared fixtures: real databases migrated by Alembic (SQLite files, and Postgres schemas), a real S3-compatible
server, real settings."""

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from matplotlib.figure import Figure
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from bench.processes import free_port, stop_all_started
from service.api.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from tests.helpers import Sessions, make_settings, postgres_schema, sqlite_database
from worker.pictures import kernels

# The dashboard's browser, API and tabs, shared by its two test modules.
pytest_plugins = ["tests.browser"]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`pytest -n 2`), each process gets its own share of the cores, which the
    processes its tests start inherit: a worker sets its threads to the cores it was given, so the two never run
    more threads than there are cores, and neither waits on a thread the other's preempted."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    cores = sorted(os.sched_getaffinity(0))
    if worker is None or count is None or len(cores) < int(count):
        return
    share = set(cores[int(worker.removeprefix("gw")) :: int(count)])
    os.sched_setaffinity(0, share)
    torch.set_num_threads(len(share))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run last. Sync Playwright keeps an asyncio loop running in the main thread for as long as
    the session's Chromium is open, and a test after it that runs a coroutine itself (`asyncio.run`) would fail."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible HTTP server (moto's) on a free loopback port, for the whole session: it starts in a second."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[dict[str, str]]:
    """A new bucket on the S3 server, emptied and removed afterwards; the settings that put artifacts in it."""
    import s3fs

    name = f"test-{uuid.uuid4().hex[:12]}"
    # Not us-east-1: S3 refuses that region spelled out when a bucket is created, and s3fs spells it out.
    values = {
        "artifact_url": f"s3://{name}/artifacts",
        "aws_endpoint_url": s3_endpoint,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "aws_default_region": "eu-west-1",
    }
    fs = s3fs.S3FileSystem(
        key="test",
        secret="test",
        endpoint_url=s3_endpoint,
        client_kwargs={"region_name": "eu-west-1"},
        skip_instance_cache=True,
    )
    fs.mkdir(name)
    try:
        yield values
    finally:
        fs.rm(name, recursive=True)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return sqlite_database(tmp_path)


@pytest.fixture
def postgres_url(postgres: str) -> Iterator[str]:
    with postgres_schema(postgres) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on Postgres."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return make_settings(tmp_path, sqlite_url)


@pytest.fixture
def sessions(settings: Settings) -> Iterator[Sessions]:
    """Sessions on the test's database, to arrange and read rows directly."""
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure the drawing modules save, so a test can read its texts, axes and images as well as its pixels."""
    saved: list[Figure] = []
    original = kernels.save_png

    def keep(fig: Figure, path: Path) -> None:
        saved.append(fig)
        original(fig, path)

    monkeypatch.setattr(kernels, "save_png", keep)
    return saved
