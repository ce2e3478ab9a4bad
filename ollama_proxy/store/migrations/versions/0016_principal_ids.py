"""Add usage.key_id and usage.team_id, and never give an id of api_keys or teams again (SQLite: AUTOINCREMENT).

A key or team is counted by its row's id, not its name (``auth.Principal.id``): one deleted and made again under
its name is another, with rate-limit windows, a fair share and usage of its own. PostgreSQL never gives a serial
again; SQLite gives the largest id again once its row is deleted, unless the table is AUTOINCREMENT, which only a
new table can be: the two small tables are copied.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# A row from before gets the id of the key (team) that holds its name now, if that one was made before the row:
# the names were unique then too, so it is that one's. A row older than it is a deleted one's: it keeps null.
_BACKFILL = """
UPDATE usage SET {column} = (SELECT {table}.id FROM {table}
                             WHERE {table}.name = usage.{name} AND {table}.created_at <= usage.ts)
WHERE {name} IS NOT NULL
"""


def upgrade() -> None:
    # Not a batch: SQLite adds a nullable column in place, where a batch would copy the whole usage table.
    op.add_column("usage", sa.Column("key_id", sa.Integer, nullable=True))
    op.add_column("usage", sa.Column("team_id", sa.Integer, nullable=True))
    op.create_index("ix_usage_team_id", "usage", ["team_id"])
    op.execute(_BACKFILL.format(column="key_id", table="api_keys", name="key_name"))
    op.execute(_BACKFILL.format(column="team_id", table="teams", name="team"))
    if op.get_bind().dialect.name == "sqlite":
        for table in ("api_keys", "teams"):
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
                pass


def downgrade() -> None:
    # api_keys and teams stay AUTOINCREMENT: an id never given again harms no revision.
    op.drop_index("ix_usage_team_id", "usage")
    with op.batch_alter_table("usage") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("team_id")
        batch.drop_column("key_id")
