"""Create, list, change and delete teams: groups of keys with a share of the GPUs, models and limits of their own.

A key of a team never gets more than its team (``access.auth``): it may use a
model only if both its own patterns and its team's allow it, it is batch if
either says batch, and its requests count against its own limits and against
its team's, which all its keys share. A team that keys belong to is not deleted;
a deleted team's budgets and spend go with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ollama_proxy.store.audit import Actor, changed, write_entry
from ollama_proxy.store.budgets import drop_held
from ollama_proxy.store.errors import Conflict, Missing, StoreError, maps_database_errors
from ollama_proxy.store.schema import api_keys, teams, utcnow
from ollama_proxy.store.values import checked_share

_CHANGEABLE = {"weight", "klass", "models", "rpm", "tpm"}


@dataclass(frozen=True)
class Team:
    """One team as stored."""

    id: int
    name: str
    weight: float
    klass: str
    models: tuple[str, ...]
    rpm: int | None
    tpm: int | None
    created_at: datetime


def _row_to_team(row) -> Team:
    values = {name: getattr(row, name) for name in Team.__dataclass_fields__}
    values["models"] = tuple(values["models"] or ())
    return Team(**values)


def team_record(team: Team) -> dict:
    """What the audit trail keeps of a team: every field but its id."""
    return {name: getattr(team, name) for name in Team.__dataclass_fields__ if name != "id"}


def read_team(connection, name: str) -> Team | None:
    row = connection.execute(select(teams).where(teams.c.name == name)).first()
    return None if row is None else _row_to_team(row)


class TeamStore:
    """The teams table; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def create_team(self, name: str, *, by: Actor, weight: float = 1.0, klass: str = "interactive", models=(),
                    rpm: int | None = None, tpm: int | None = None) -> Team:
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise StoreError("a team's name is 1 to 100 characters")
        fields = checked_share({"weight": weight, "klass": klass, "models": models, "rpm": rpm, "tpm": tpm})
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(teams).values(**fields, name=name, created_at=utcnow()))
                drop_held(connection, by, "team", name)
                team = read_team(connection, name)
                write_entry(connection, by, "team.create", name, None, team_record(team))
        except IntegrityError:
            raise Conflict(f"a team named '{name}' exists already") from None
        return team

    @maps_database_errors
    def list_teams(self) -> list[Team]:
        with self.engine.connect() as connection:
            return [_row_to_team(row) for row in connection.execute(select(teams).order_by(teams.c.name))]

    @maps_database_errors
    def get_team(self, name: str) -> Team | None:
        with self.engine.connect() as connection:
            return read_team(connection, name)

    @maps_database_errors
    def update_team(self, name: str, *, by: Actor, **fields) -> Team:
        """Change some of a team's fields (not its name); return the team as it now is."""
        unknown = set(fields) - _CHANGEABLE
        if unknown:
            raise StoreError(f"cannot change {', '.join(sorted(unknown))} of a team")
        fields = checked_share(dict(fields))
        with self.engine.begin() as connection:
            before = read_team(connection, name)
            if before is None:
                raise Missing(f"no team named '{name}'")
            if not fields:
                return before
            connection.execute(update(teams).where(teams.c.name == name).values(**fields))
            after = read_team(connection, name)
            was, now = changed(team_record(before), team_record(after))
            if now:
                write_entry(connection, by, "team.update", name, was, now)
        return after

    @maps_database_errors
    def delete_team(self, name: str, *, by: Actor) -> None:
        """Delete a team no key belongs to; refuse one that keys do, naming them."""
        with self.engine.begin() as connection:
            before = read_team(connection, name)
            if before is None:
                raise Missing(f"no team named '{name}'")
            members = connection.execute(select(api_keys.c.name).where(api_keys.c.team == name)
                                         .order_by(api_keys.c.name)).scalars().all()
            if members:
                raise StoreError(f"team '{name}' still has keys: {', '.join(members)} "
                                 "(delete them, or move them to another team, first)")
            connection.execute(delete(teams).where(teams.c.name == name))
            drop_held(connection, by, "team", name)
            write_entry(connection, by, "team.delete", name, team_record(before), None)
