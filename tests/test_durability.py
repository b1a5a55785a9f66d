"""A `201 Created` means stored: every SQLite connection the API, a worker and the supervisor open syncs each commit
to disk (`synchronous=FULL`), so a power cut or an OS crash cannot roll an acknowledged job back; on PostgreSQL the
server's durable defaults are left as they are. What FULL costs: `python -m bench.durability`."""

from contextlib import ExitStack, closing

import pytest
from sqlalchemy import Engine, text

from bench.durability import READ_BACK, engine_with
from service.api.app import create_app
from service.config import Settings
from service.db import make_engine
from service.supervise.supervisor import JobReleaser
from worker.loop import Worker

FULL = READ_BACK["FULL"]
# More connections than one request or one worker holds at once: the pool opens each of them anew.
CONNECTIONS = 4


def synchronous_of_each_connection(engine: Engine) -> list[int]:
    """`PRAGMA synchronous` as each of several connections open at the same time reads it back."""
    # Raw DB-API connections: the pragma is set when the pool connects, and no transaction (which would take
    # SQLite's one write lock) is needed to read it back.
    with ExitStack() as stack:
        connections = [stack.enter_context(closing(engine.raw_connection())) for _ in range(CONNECTIONS)]
        return [int(c.cursor().execute("PRAGMA synchronous").fetchone()[0]) for c in connections]


def test_every_connection_of_the_apis_engine_syncs_each_commit(settings: Settings) -> None:
    app = create_app(settings)
    for database in (app.state.database, app.state.read_database):  # the writing and the read-only sessions
        engine = database.sessions.kw["bind"]
        assert synchronous_of_each_connection(engine) == [FULL] * CONNECTIONS
        engine.dispose()


def test_every_connection_of_a_workers_engine_syncs_each_commit(settings: Settings) -> None:
    worker = Worker(settings)
    try:
        assert synchronous_of_each_connection(worker.engine) == [FULL] * CONNECTIONS
    finally:
        worker.engine.dispose()


def test_every_connection_of_the_supervisors_engine_syncs_each_commit(settings: Settings) -> None:
    releaser = JobReleaser(settings)
    try:
        assert synchronous_of_each_connection(releaser.engine) == [FULL] * CONNECTIONS
    finally:
        releaser.close()


def test_the_benchmark_compares_against_a_connection_really_set_to_normal(tmp_path) -> None:
    # The cost the README quotes is FULL against NORMAL: the baseline must be NORMAL on every connection too.
    with engine_with("NORMAL", tmp_path / "normal") as engine:
        assert synchronous_of_each_connection(engine) == [READ_BACK["NORMAL"]] * CONNECTIONS


@pytest.mark.postgres
def test_the_postgres_engine_keeps_the_servers_durable_commits(postgres_url: str) -> None:
    # PostgreSQL's defaults already make a commit wait for its WAL to reach the disk: the engine must not trade that
    # for speed (synchronous_commit=off would lose the last commits on a crash, as NORMAL does on SQLite).
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            settings = {name: conn.execute(text(f"SHOW {name}")).scalar() for name in ("fsync", "synchronous_commit")}
    finally:
        engine.dispose()
    assert settings == {"fsync": "on", "synchronous_commit": "on"}
