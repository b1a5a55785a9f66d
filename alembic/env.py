"""Alembic runs migrations through the service's own engine, so SQLite gets the same settings everywhere."""

from logging.config import fileConfig

from alembic import context

from service.config import get_settings
from service.db import make_engine
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


def run_migrations_online() -> None:
    # A migration may rewrite a big table: give its statements minutes, not the seconds a request gets.
    engine = make_engine(url, timeout=600)
    with engine.connect() as connection:
        # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
