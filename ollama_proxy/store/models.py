"""Keep model aliases and per-model overrides set at run time (they merge over the YAML ones)."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select, update

from ollama_proxy.store.audit import Actor, changed, write_entry
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
    def set_alias(self, alias: str, target: str, *, by: Actor) -> None:
        """Make ``alias`` name ``target``, replacing what it named before."""
        values = {"alias": _name(alias, "an alias"), "target": _name(target, "an alias's target")}
        self._upsert(aliases, aliases.c.alias, alias, values, by, "alias.set", ("target",))

    @maps_database_errors
    def delete_alias(self, alias: str, *, by: Actor) -> None:
        self._delete(aliases, aliases.c.alias, alias, "alias", by, "alias.delete", ("target",))

    @maps_database_errors
    def list_overrides(self) -> dict[str, dict]:
        """Return ``{model: {"defaults": {...}, "enforce": {...}}}``."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(overrides).order_by(overrides.c.model))
            return {row.model: {"defaults": dict(row.defaults), "enforce": dict(row.enforce)} for row in rows}

    @maps_database_errors
    def set_override(self, model: str, defaults: dict | None = None, enforce: dict | None = None, *,
                     by: Actor) -> None:
        """Set ``model``'s defaults and enforced fields, replacing what it had."""
        values = {"model": _name(model, "a model name"), "defaults": _mapping(defaults, "defaults"),
                  "enforce": _mapping(enforce, "enforce")}
        self._upsert(overrides, overrides.c.model, model, values, by, "override.set", ("defaults", "enforce"))

    @maps_database_errors
    def delete_override(self, model: str, *, by: Actor) -> None:
        self._delete(overrides, overrides.c.model, model, "override for", by, "override.delete",
                     ("defaults", "enforce"))

    def _upsert(self, table, column, name: str, values: dict, by: Actor, action: str, kept: tuple[str, ...]) -> None:
        # Update first, insert when absent: portable, and a unique index settles a race.
        with self.engine.begin() as connection:
            before = _record(connection, table, column, name, kept)
            if connection.execute(update(table).where(column == name).values(**values)).rowcount == 0:
                connection.execute(insert(table).values(**values))
            was, now = changed(before, {field: values[field] for field in kept})
            if now:
                write_entry(connection, by, action, name, was, now)

    def _delete(self, table, column, name: str, what: str, by: Actor, action: str, kept: tuple[str, ...]) -> None:
        with self.engine.begin() as connection:
            before = _record(connection, table, column, name, kept)
            if connection.execute(delete(table).where(column == name)).rowcount == 0:
                raise Missing(f"no {what} '{name}'")
            write_entry(connection, by, action, name, before, None)


def _record(connection, table, column, name: str, kept: tuple[str, ...]) -> dict | None:
    row = connection.execute(select(table).where(column == name)).first()
    return None if row is None else {field: getattr(row, field) for field in kept}
