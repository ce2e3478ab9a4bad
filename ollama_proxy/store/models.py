"""Keep model aliases and per-model overrides set at run time (they merge over the YAML ones)."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select, update

from ollama_proxy.store.errors import Missing, StoreError, maps_database_errors
from ollama_proxy.store.schema import aliases, overrides


def _name(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise StoreError(f"{what} is 1 to 255 characters")
    return value


def _mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise StoreError(f"{what} must be a mapping of field names to values")
    return dict(value)


class ModelStore:
    """The aliases and overrides tables; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def list_aliases(self) -> dict[str, str]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(aliases.c.alias, aliases.c.target).order_by(aliases.c.alias))
            return {row.alias: row.target for row in rows}

    @maps_database_errors
    def set_alias(self, alias: str, target: str) -> None:
        """Make ``alias`` name ``target``, replacing what it named before."""
        values = {"alias": _name(alias, "an alias"), "target": _name(target, "an alias's target")}
        self._upsert(aliases, aliases.c.alias, alias, values)

    @maps_database_errors
    def delete_alias(self, alias: str) -> None:
        self._delete(aliases, aliases.c.alias, alias, "alias")

    @maps_database_errors
    def list_overrides(self) -> dict[str, dict]:
        """Return ``{model: {"defaults": {...}, "enforce": {...}}}``."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(overrides).order_by(overrides.c.model))
            return {row.model: {"defaults": dict(row.defaults), "enforce": dict(row.enforce)} for row in rows}

    @maps_database_errors
    def set_override(self, model: str, defaults: dict | None = None, enforce: dict | None = None) -> None:
        """Set ``model``'s defaults and enforced fields, replacing what it had."""
        values = {"model": _name(model, "a model name"), "defaults": _mapping(defaults, "defaults"),
                  "enforce": _mapping(enforce, "enforce")}
        self._upsert(overrides, overrides.c.model, model, values)

    @maps_database_errors
    def delete_override(self, model: str) -> None:
        self._delete(overrides, overrides.c.model, model, "override for")

    def _upsert(self, table, column, name: str, values: dict) -> None:
        # Update first, insert when absent: portable, and a unique index settles a race.
        with self.engine.begin() as connection:
            if connection.execute(update(table).where(column == name).values(**values)).rowcount == 0:
                connection.execute(insert(table).values(**values))

    def _delete(self, table, column, name: str, what: str) -> None:
        with self.engine.begin() as connection:
            if connection.execute(delete(table).where(column == name)).rowcount == 0:
                raise Missing(f"no {what} '{name}'")
