"""Add a key's share of the GPUs: its weight, its class, and whether it is a trusted front end."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:  # batch: SQLite cannot alter a table in place
        batch.add_column(sa.Column("weight", sa.Float, nullable=False, server_default="1"))
        batch.add_column(sa.Column("klass", sa.String(16), nullable=False, server_default="interactive"))
        batch.add_column(sa.Column("trusted_frontend", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for column in ("trusted_frontend", "klass", "weight"):
            batch.drop_column(column)
