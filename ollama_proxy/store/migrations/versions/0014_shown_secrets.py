"""Add shown_secrets: a new key's secret, sealed, from the admin page's create form to the page that shows it once."""

import sqlalchemy as sa
from alembic import op

from ollama_proxy.store.schema import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shown_secrets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("handle", sa.String(64), nullable=False),
        sa.Column("key_name", sa.String(100), nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("handle", name="uq_shown_secrets_handle"),
    )
    op.create_index("ix_shown_secrets_expires_at", "shown_secrets", ["expires_at"])


def downgrade() -> None:
    op.drop_table("shown_secrets")
