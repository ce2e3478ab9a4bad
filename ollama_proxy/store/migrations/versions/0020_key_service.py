"""Add api_keys.service: a key a service uses, whose owner is the person named responsible for it.

Every key made on the admin page by a signed-in person has an owner from now on: the person, or, for a
service key, the person who answers for it. The owner's membership, key cap and person budget hold it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Not a batch: SQLite adds a column with a default in place, where a batch would copy the table.
    op.add_column("api_keys", sa.Column("service", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:  # batch: SQLite before 3.35 cannot drop a column
        batch.drop_column("service")
