"""Add budgets, and what each holder spent in each period."""

import sqlalchemy as sa
from alembic import op

from ollama_proxy.store.schema import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("holder_kind", sa.String(8), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("holder_kind", "holder", "period", "unit", name="uq_budgets_holder"),
    )
    op.create_table(
        "budget_spend",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("holder_kind", sa.String(8), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("period_start", UtcDateTime, nullable=False),
        sa.Column("spent", sa.Float, nullable=False),
        sa.Column("refusals", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("holder_kind", "holder", "period", "unit", "period_start",
                            name="uq_budget_spend_period"),
    )


def downgrade() -> None:
    op.drop_table("budget_spend")
    op.drop_table("budgets")
