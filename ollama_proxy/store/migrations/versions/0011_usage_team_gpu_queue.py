"""Add usage.team, usage.gpu_seconds and usage.queue_ms: what the usage page sums per team, and its queue waits."""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COLUMNS = ("team", "gpu_seconds", "queue_ms")


def upgrade() -> None:
    # Not a batch: SQLite adds a nullable column in place, where a batch would copy the whole usage table.
    op.add_column("usage", sa.Column("team", sa.String(100), nullable=True))
    op.add_column("usage", sa.Column("gpu_seconds", sa.Float, nullable=True))
    op.add_column("usage", sa.Column("queue_ms", sa.Float, nullable=True))
    op.create_index("ix_usage_team", "usage", ["team"])


def downgrade() -> None:
    op.drop_index("ix_usage_team", table_name="usage")
    with op.batch_alter_table("usage") as batch:  # batch: SQLite before 3.35 cannot drop a column
        for name in _COLUMNS:
            batch.drop_column(name)
