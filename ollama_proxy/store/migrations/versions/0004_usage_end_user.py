"""Add usage.end_user: the user a trusted front end named for the request (null: none named)."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds a nullable column in place, where a batch would copy the whole usage table.
    op.add_column("usage", sa.Column("end_user", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("end_user")
