"""Add teams, and api_keys.team: the team a key belongs to, whose models, limits and class bound it."""

import sqlalchemy as sa
from alembic import op

from ollama_proxy.store.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("weight", sa.Float, nullable=False, server_default="1"),
        sa.Column("klass", sa.String(16), nullable=False, server_default="interactive"),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("name", name="uq_teams_name"),
    )
    # Not a batch: SQLite adds a nullable column in place, where a batch would copy the table.
    op.add_column("api_keys", sa.Column("team", sa.String(100)))
    op.create_index("ix_api_keys_team", "api_keys", ["team"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_team", "api_keys")
    with op.batch_alter_table("api_keys") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("team")
    op.drop_table("teams")
