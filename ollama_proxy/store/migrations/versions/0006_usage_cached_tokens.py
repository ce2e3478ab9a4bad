"""Add usage.cached_tokens: the prompt tokens Ollama read from its cache, as it said (null: not said)."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds a nullable column in place, where a batch would copy the whole usage table.
    op.add_column("usage", sa.Column("cached_tokens", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("cached_tokens")
