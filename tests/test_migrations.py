"""Alembic owns the schema: the migrations must build exactly what the models describe, and undo cleanly."""

from alembic import command
from sqlalchemy import inspect

from bench.processes import alembic_config, migrate
from service.db import make_engine


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises if autogenerate would emit any operation


def test_migrations_downgrade_and_upgrade_again(database_url: str) -> None:
    expected = {"jobs", "epoch_metrics", "artifacts", "workers", "sweeps", "job_events", "alembic_version"}
    assert tables(database_url) == expected
    command.downgrade(alembic_config(database_url), "base")
    assert tables(database_url) == {"alembic_version"}
    migrate(database_url)
    assert tables(database_url) == expected
