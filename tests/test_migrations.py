"""Alembic owns the schema: the migrations must build exactly what the models describe, and undo cleanly."""

from pathlib import Path
from typing import Any

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from bench.processes import alembic_config, migrate
from service.api.app import create_app
from service.db import make_engine
from service.models import Base
from service.spec import DEMO
from tests.helpers import make_settings


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises if autogenerate would emit any operation


def test_migrations_downgrade_and_upgrade_again(database_url: str) -> None:
    expected = {
        "jobs",
        "epoch_metrics",
        "artifacts",
        "workers",
        "sweeps",
        "job_events",
        "users",
        "sessions",
        "alembic_version",
    }
    assert tables(database_url) == expected
    command.downgrade(alembic_config(database_url), "base")
    assert tables(database_url) == {"alembic_version"}
    migrate(database_url)
    assert tables(database_url) == expected


# ---------------------------------------------------------------- ids are never handed out twice


def test_a_deleted_jobs_id_and_its_event_ids_are_never_given_again(tmp_path: Path, database_url: str) -> None:
    with TestClient(create_app(make_settings(tmp_path, database_url))) as client:
        first, newest = (client.post("/jobs", json=DEMO).json()["id"] for _ in range(2))
        assert client.post(f"/jobs/{newest}/cancel").json()["status"] == "cancelled"
        last_event = _rows(database_url, "SELECT max(id) FROM job_events")[0][0]
        assert client.delete(f"/jobs/{newest}").status_code == 204

        again = client.post("/jobs", json=DEMO).json()["id"]
        assert (first, again) == (newest - 1, newest + 1)
        assert _rows(database_url, "SELECT min(id) FROM job_events WHERE job_id = :job", job=again)[0][0] > last_event


def test_a_deleted_sweeps_id_is_never_given_again(tmp_path: Path, database_url: str) -> None:
    with TestClient(create_app(make_settings(tmp_path, database_url))) as client:
        sweep = client.post("/sweeps", json={"base": DEMO, "grid": {"seed": [1]}}).json()
        client.post(f"/sweeps/{sweep['id']}/cancel")
        client.delete(f"/jobs/{sweep['jobs'][0]['id']}")
        # The API keeps sweeps; whoever removes one by hand must not see its id come back either.
        _rows(database_url, "DELETE FROM sweeps WHERE id = :sweep", sweep=sweep["id"])
        assert client.post("/sweeps", json={"base": DEMO, "grid": {"seed": [1]}}).json()["id"] == sweep["id"] + 1


def test_sqlite_tables_are_autoincrement_as_the_models_say(tmp_path: Path, sqlite_url: str) -> None:
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = make_engine(fresh)
    Base.metadata.create_all(engine)
    engine.dispose()
    assert (
        _autoincrement_tables(sqlite_url) == _autoincrement_tables(fresh) == {"jobs", "sweeps", "job_events", "users"}
    )


def test_upgrading_a_sqlite_database_keeps_every_row_and_counts_on_from_its_ids(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0003")  # before sweeps: 0004 rebuilt `jobs` too
    for statement in OLD_ROWS:
        _rows(url, statement)
    migrate(url)
    assert _counts(url) == {"jobs": 2, "epoch_metrics": 1, "artifacts": 1}
    _rows(url, "DELETE FROM jobs WHERE id = 8")
    with TestClient(create_app(make_settings(tmp_path, url))) as client:
        assert client.post("/jobs", json=DEMO).json()["id"] == 9
    command.downgrade(alembic_config(url), "0006")
    assert _autoincrement_tables(url) == set()
    migrate(url)
    assert _counts(url) == {"jobs": 2, "epoch_metrics": 1, "artifacts": 1}


# A job of 0003's schema with one epoch and one file, and a second job: the newest, id 8.
_JOB = (
    "INSERT INTO jobs (id, spec, status, device_request, created_at, attempts, max_attempts, epochs_completed, "
    "steps_done, cancel_requested) VALUES ({}, '{{}}', 'succeeded', 'auto', '2026-01-01', 1, 3, 1, 1, 0)"
)
OLD_ROWS = (
    _JOB.format(7),
    _JOB.format(8),
    "INSERT INTO epoch_metrics (job_id, epoch, train_loss, test_loss, test_accuracy, seconds, images_per_second, "
    "details, created_at) VALUES (7, 1, 1.0, 1.0, 0.5, 1.0, 1.0, '{}', '2026-01-01')",
    "INSERT INTO artifacts (job_id, name, key, content_type, size, updated_at) "
    "VALUES (7, 'curves.png', '7/curves.png', 'image/png', 1, '2026-01-01')",
)


def _rows(url: str, statement: str, **params: Any) -> list[Any]:
    """What `statement` returns (nothing for a change), run in a transaction of its own."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()


def _counts(url: str) -> dict[str, int]:
    tables = ("jobs", "epoch_metrics", "artifacts")
    return {table: _rows(url, f"SELECT count(*) FROM {table}")[0][0] for table in tables}  # noqa: S608 - our names


def _autoincrement_tables(url: str) -> set[str]:
    rows = _rows(url, "SELECT name, sql FROM sqlite_master WHERE type = 'table'")
    return {name for name, sql in rows if "AUTOINCREMENT" in sql.upper()}
