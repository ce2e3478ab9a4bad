"""Add usage.measured: whether a row's GPU-seconds or tokens are the proxy's measure, where Ollama reported none."""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds a nullable column in place, where a batch would copy the whole usage table.
    op.add_column("usage", sa.Column("measured", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("measured")
