"""Add api_keys.web: the key may use Ollama's web search and fetch, which reach the internet from the server."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds a column with a default in place, where a batch would copy the table.
    op.add_column("api_keys", sa.Column("web", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("web")
