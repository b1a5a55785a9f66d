"""Alembic runs migrations through the service's own engine, so SQLite gets the same settings everywhere."""

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import event

from service.config import get_settings
from service.db import is_sqlite, make_engine
from service.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# A URL given by the caller (tests pass one through the Config object) wins over the environment.
url = config.attributes.get("database_url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")


def run_migrations_online() -> None:
    # A migration may rewrite a big table: give its statements minutes, not the seconds a request gets.
    engine = make_engine(url, timeout=600)
    sqlite = is_sqlite(url)
    if sqlite:
        # Batch mode rebuilds a SQLite table by copying it and dropping the original; with foreign keys enforced,
        # that drop first deletes every row that refers to it (ON DELETE CASCADE: a job's epochs, files, events).
        # The pragma only takes effect outside a transaction: set on connecting, after make_engine's own listener.
        event.listen(engine, "connect", _foreign_keys_off)
    with engine.connect() as connection:
        # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
            # What the rebuilt tables hold must still refer to rows that exist, or nothing is committed.
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all() if sqlite else []
            if broken:
                raise RuntimeError(f"the migration left rows referring to nothing: {broken[:5]}")
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
