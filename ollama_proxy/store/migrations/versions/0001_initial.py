"""Create api_keys, usage, aliases and overrides."""

import sqlalchemy as sa
from alembic import op

from ollama_proxy.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("expires_at", UtcDateTime),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_used_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", UtcDateTime, nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("key_name", sa.String(100)),
        sa.Column("surface", sa.String(16)),
        sa.Column("model", sa.String(255)),
        sa.Column("backend", sa.String(100)),
        sa.Column("upstream_model", sa.String(255)),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("duration_ms", sa.Float),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("status", sa.Integer),
        sa.Column("aborted", sa.Boolean),
        sa.PrimaryKeyConstraint("id", name="pk_usage"),
    )
    for column in ("ts", "key_name", "model"):
        op.create_index(f"ix_usage_{column}", "usage", [column])
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("alias", sa.String(255), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_aliases"),
        sa.UniqueConstraint("alias", name="uq_aliases_alias"),
    )
    op.create_table(
        "overrides",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("defaults", sa.JSON, nullable=False),
        sa.Column("enforce", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_overrides"),
        sa.UniqueConstraint("model", name="uq_overrides_model"),
    )


def downgrade() -> None:
    for table in ("overrides", "aliases", "usage", "api_keys"):
        op.drop_table(table)
