"""Add api_keys.owner: who made a key for themselves on the admin page's "My keys" (their sign-on subject)."""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds a nullable column in place, where a batch would copy the table.
    op.add_column("api_keys", sa.Column("owner", sa.String(255)))
    op.create_index("ix_api_keys_owner", "api_keys", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_owner", "api_keys")
    with op.batch_alter_table("api_keys") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("owner")
