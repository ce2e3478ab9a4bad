"""Keep what the identity provider last said of each person who signed in with it (``admin.oidc``).

A row holds the role and team the provider's claims gave, when it last confirmed them, and,
once it no longer vouches for the person, when and why. The keys a person made on My keys
work while the row confirms them (``access.membership``). The refresh token kept to ask the
provider again is sealed by the caller: the store never sees it in the clear, and no
``Member`` carries it. A re-check is claimed (``claim_member_check``) so that one worker of
one instance asks the provider at a time: a provider that rotates refresh tokens refuses
the second use of one, and may revoke the whole grant for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ollama_proxy.store.audit import Actor, write_entry
from ollama_proxy.store.errors import maps_database_errors
from ollama_proxy.store.schema import members

NAME_LENGTH = 255
NOTE_LENGTH = 300


@dataclass(frozen=True)
class Member:
    """What the provider last said of one person; ``renewable``: a refresh token is kept to ask it again."""

    subject: str
    name: str
    role: str | None
    team: str | None
    confirmed_at: datetime
    checked_at: datetime
    lost_at: datetime | None
    note: str | None
    renewable: bool


def _row_to_member(row) -> Member:
    return Member(row.subject, row.name, row.role, row.team, row.confirmed_at, row.checked_at, row.lost_at,
                  row.note, row.refresh_token is not None)


def _read(connection, subject: str) -> Member | None:
    row = connection.execute(select(members).where(members.c.subject == subject)).first()
    return None if row is None else _row_to_member(row)


class MemberStore:
    """The members table; mixed into ``Store``."""

    engine: Engine

    @maps_database_errors
    def confirm_member(self, subject: str, *, name: str, role: str | None, team: str | None,
                       refresh_token: str | None, now: datetime) -> None:
        """Record that the provider confirms ``subject``'s role and team now; keep ``refresh_token`` (sealed;
        None: none) to ask it again. A person it had stopped vouching for is confirmed again."""
        values = {"name": name[:NAME_LENGTH], "role": role, "team": team, "confirmed_at": now, "checked_at": now,
                  "lost_at": None, "note": None, "refresh_token": refresh_token, "checking_until": None}
        change = update(members).where(members.c.subject == subject).values(**values)
        with self.engine.begin() as connection:
            if connection.execute(change).rowcount:
                return
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(members).values(subject=subject, **values))
        except IntegrityError:  # the same person signed in on another worker meanwhile
            with self.engine.begin() as connection:
                connection.execute(change)

    @maps_database_errors
    def lose_member(self, subject: str, reason: str, *, by: Actor, now: datetime) -> bool:
        """Record that the provider no longer vouches for ``subject``, and why; forget the refresh token.

        Return whether this changed anything (a person lost already, or never seen, is left as they are).
        """
        with self.engine.begin() as connection:
            before = _read(connection, subject)
            lost = connection.execute(update(members).where(
                members.c.subject == subject, members.c.lost_at.is_(None)).values(
                lost_at=now, checked_at=now, note=reason[:NOTE_LENGTH], refresh_token=None,
                checking_until=None)).rowcount
            if lost:
                write_entry(connection, by, "member.lost", before.name, {"role": before.role, "team": before.team},
                            {"subject": subject, "reason": reason[:NOTE_LENGTH]})
        return bool(lost)

    @maps_database_errors
    def note_member_check(self, subject: str, note: str, *, now: datetime, forget_token: bool = False) -> None:
        """Record a re-check that settled nothing (the provider could not be reached), ending its claim;
        ``forget_token``: the kept refresh token is of no use any more."""
        values = {"checked_at": now, "note": note[:NOTE_LENGTH], "checking_until": None}
        if forget_token:
            values["refresh_token"] = None
        with self.engine.begin() as connection:
            connection.execute(update(members).where(members.c.subject == subject).values(**values))

    @maps_database_errors
    def claim_member_check(self, subject: str, *, now: datetime, until: datetime) -> str | None:
        """Claim the re-check of ``subject`` until ``until``; return the sealed refresh token to do it with, or
        None when another worker holds the claim, or there is nothing to re-check with."""
        with self.engine.begin() as connection:
            claimed = connection.execute(update(members).where(
                members.c.subject == subject, members.c.refresh_token.isnot(None), members.c.lost_at.is_(None),
                or_(members.c.checking_until.is_(None), members.c.checking_until <= now)).values(
                checking_until=until)).rowcount
            if not claimed:
                return None
            return connection.execute(select(members.c.refresh_token).where(members.c.subject == subject)).scalar()

    @maps_database_errors
    def members_due(self, *, before: datetime, now: datetime) -> list[str]:
        """The subjects to re-check: not asked about since ``before``, a refresh token kept, no claim held."""
        query = select(members.c.subject).where(
            members.c.checked_at < before, members.c.refresh_token.isnot(None), members.c.lost_at.is_(None),
            or_(members.c.checking_until.is_(None), members.c.checking_until <= now)).order_by(members.c.checked_at)
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    @maps_database_errors
    def get_member(self, subject: str) -> Member | None:
        with self.engine.connect() as connection:
            return _read(connection, subject)

    @maps_database_errors
    def list_members(self) -> list[Member]:
        with self.engine.connect() as connection:
            return [_row_to_member(row) for row in connection.execute(select(members).order_by(members.c.subject))]
