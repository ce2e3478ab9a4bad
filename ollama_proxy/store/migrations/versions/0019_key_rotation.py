"""Add api_keys.previous_*: the secret a rotation replaced, kept (its prefix and hash) with the moment it stops.

A key rotated with a grace period answers to its old secret until ``previous_until``; one rotated without any
keeps it with the moment of the rotation, so the old secret is refused with the reason rather than as unknown.
"""

import sqlalchemy as sa
from alembic import op

from ollama_proxy.store.schema import UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds nullable columns in place, where a batch would copy the table.
    op.add_column("api_keys", sa.Column("previous_prefix", sa.String(16)))
    op.add_column("api_keys", sa.Column("previous_secret_hash", sa.String(64)))
    op.add_column("api_keys", sa.Column("previous_until", UtcDateTime))
    op.create_index("ix_api_keys_previous_prefix", "api_keys", ["previous_prefix"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_previous_prefix", "api_keys")
    with op.batch_alter_table("api_keys") as batch:  # batch: SQLite before 3.35 cannot drop a column
        for column in ("previous_until", "previous_secret_hash", "previous_prefix"):
            batch.drop_column(column)
