"""Add members: what the identity provider last said of each person who signed in with it.

The owners of keys made before it are written in as confirmed now, in the team of their keys: their
keys go on working for ``admin.oidc.membership_max_age``, and after that only once the provider
confirms them again (they sign in).
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from ollama_proxy.store.schema import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "members",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16)),
        sa.Column("team", sa.String(100)),
        sa.Column("confirmed_at", UtcDateTime, nullable=False),
        sa.Column("checked_at", UtcDateTime, nullable=False),
        sa.Column("lost_at", UtcDateTime),
        sa.Column("note", sa.String(300)),
        sa.Column("refresh_token", sa.Text),
        sa.Column("checking_until", UtcDateTime),
        sa.UniqueConstraint("subject", name="uq_members_subject"),
    )
    owners = sa.text("SELECT owner, MIN(team) AS team FROM api_keys WHERE owner IS NOT NULL GROUP BY owner")
    now = datetime.now(timezone.utc)
    rows = [{"subject": owner, "name": owner, "role": "member", "team": team, "confirmed_at": now, "checked_at": now}
            for owner, team in op.get_bind().execute(owners)]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_table("members")
