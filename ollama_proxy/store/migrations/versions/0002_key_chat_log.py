"""Add api_keys.chat_log: a key's own choice about chat logs (null: the global setting)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:  # batch: SQLite cannot alter a table in place
        batch.add_column(sa.Column("chat_log", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("chat_log")
