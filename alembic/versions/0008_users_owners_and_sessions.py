"""users with roles and token digests, who owns each job and sweep, and the dashboard's server-side sessions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("max_active_jobs", sa.Integer(), nullable=True),
        sa.Column("max_sweep_jobs", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_users_token_digest")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sessions",
        sa.Column("id_digest", sa.String(length=64), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id_digest", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_token_digest"), "sessions", ["token_digest"])
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])
    # Added in place (SQLite's ALTER TABLE ADD COLUMN): the tables keep their rows and their AUTOINCREMENT.
    op.add_column("jobs", sa.Column("owner", sa.String(length=64), nullable=True))
    op.create_index("ix_jobs_owner_status", "jobs", ["owner", "status"])
    op.create_index("ix_jobs_owner_started_at", "jobs", ["owner", "started_at"])
    op.add_column("sweeps", sa.Column("owner", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_sweeps_owner"), "sweeps", ["owner"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sweeps_owner"), table_name="sweeps")
    with op.batch_alter_table("sweeps", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("owner")
    op.drop_index("ix_jobs_owner_started_at", table_name="jobs")
    op.drop_index("ix_jobs_owner_status", table_name="jobs")
    with op.batch_alter_table("jobs", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("owner")
    op.drop_table("sessions")
    op.drop_table("users")
