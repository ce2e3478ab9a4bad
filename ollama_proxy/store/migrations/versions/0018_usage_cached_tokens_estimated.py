"""Add usage.cached_tokens_estimated: the prompt tokens the scheduler expected the server to hold in its cache.

The proxy's estimate, kept apart from cached_tokens, which is only ever what Ollama said (no release up to
0.33 says it). Null: no estimate made (the request was not scheduled, or had no prompt the scheduler follows).
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds a nullable column in place, where a batch would copy the whole usage table.
    op.add_column("usage", sa.Column("cached_tokens_estimated", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("cached_tokens_estimated")
