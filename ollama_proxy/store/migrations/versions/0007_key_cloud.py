"""Add api_keys.cloud: the key may use cloud models, which send the prompt to ollama.com under the server's account."""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds a column with a default in place, where a batch would copy the table.
    op.add_column("api_keys", sa.Column("cloud", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("cloud")
