"""Hold a new key's secret, sealed, from the admin page's create form to the page that shows it once.

The row is deleted as it is taken, so one request alone gets it, on whichever worker or instance;
one gone by is never given and is dropped by the next hold or take.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, insert, select

from ollama_proxy.store.errors import StoreError, maps_database_errors
from ollama_proxy.store.schema import shown_secrets, utcnow


def _drop_gone_by(connection) -> None:
    connection.execute(delete(shown_secrets).where(shown_secrets.c.expires_at <= utcnow()))


class ShownSecretStore:
    """The shown_secrets table; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def hold_shown_secret(self, handle: str, key_name: str, sealed: bytes, *, until: datetime) -> None:
        """Keep ``sealed`` (a secret of the key ``key_name``) under ``handle`` until ``until``."""
        if until.tzinfo is None:
            raise StoreError("until must be a datetime with a time zone")
        with self.engine.begin() as connection:
            _drop_gone_by(connection)
            connection.execute(insert(shown_secrets).values(handle=handle, key_name=key_name, sealed=sealed,
                                                            expires_at=until))

    @maps_database_errors
    def take_shown_secret(self, handle: str, key_name: str) -> bytes | None:
        """Remove what ``handle`` holds; return it if it is ``key_name``'s, not gone by, and not taken meanwhile."""
        with self.engine.begin() as connection:
            row = connection.execute(select(shown_secrets).where(shown_secrets.c.handle == handle)).first()
            # Two takes at once both read the row; the one whose delete removes it gets it.
            taken = row is not None and connection.execute(
                delete(shown_secrets).where(shown_secrets.c.id == row.id)).rowcount == 1
            _drop_gone_by(connection)
        if not taken or row.key_name != key_name or row.expires_at <= utcnow():
            return None
        return bytes(row.sealed)
