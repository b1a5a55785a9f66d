"""epoch_metrics.details for further measurements; artifacts.key for where the store keeps each file

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("epoch_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))
    op.execute("UPDATE epoch_metrics SET details = '{}'")
    with op.batch_alter_table("epoch_metrics", schema=None) as batch_op:
        batch_op.alter_column("details", existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key", sa.String(length=400), nullable=True))
    # Files published before keys existed lie at <job id>/<name>, which is what the local store's keys are.
    op.execute("UPDATE artifacts SET key = CAST(job_id AS VARCHAR(20)) || '/' || name")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.alter_column("key", existing_type=sa.String(length=400), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_column("key")
    with op.batch_alter_table("epoch_metrics", schema=None) as batch_op:
        batch_op.drop_column("details")
