"""ids never reused: jobs, sweeps and job_events get SQLite's AUTOINCREMENT

Without it SQLite gives a new row the largest id in use plus one, so deleting the newest job handed its id to the
next one, and a bookmark, a script or an event stream's Last-Event-ID came to mean another row. SQLite cannot add
AUTOINCREMENT to a table: each is rebuilt (batch mode), its rows copied with their ids, and SQLite then counts on
from the largest. Postgres's sequences never go back, so there is nothing to do there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 17:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables whose ids the API shows; the others' keys are (job, epoch), (job, name) or a worker's name.
TABLES = ("sweeps", "jobs", "job_events")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # alembic/env.py turns SQLite's foreign keys off for migrations: dropping `jobs` to rebuild it must not
    # cascade to its epochs, files and events.
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass  # nothing changes but the table option


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
