"""Add budget_leases: the shares of budgets that workers leased, to admit requests without reading the store."""

import sqlalchemy as sa
from alembic import op

from ollama_proxy.store.schema import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_leases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("holder_kind", sa.String(8), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("period_start", UtcDateTime, nullable=False),
        sa.Column("lessee", sa.String(80), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("holder_kind", "holder", "period", "unit", "period_start", "lessee",
                            name="uq_budget_leases_lessee"),
    )


def downgrade() -> None:
    op.drop_table("budget_leases")
