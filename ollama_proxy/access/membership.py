"""Say whether a key a person answers for still stands on their membership at the identity provider.

A key with an owner (their sign-on subject: made on My keys, on the keys page by someone signed in,
or a service key's responsible person) works while the provider vouches that its owner is in the
key's team, or is an admin (who answers for every team's keys): the store's member row
(``store.members``) says what the provider last said, and when. The key lapses when the provider no
longer vouches for its owner (a re-check found them gone, or signed in with no team), when it puts
them in another team, and when it has not confirmed them for ``admin.oidc.membership_max_age``. A
key with no owner is the operator's (made with the command line, or by the password login), and
never lapses this way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ollama_proxy.store import ApiKey, Member

SIGN_IN_AGAIN = "signing in to the admin page again confirms it"
ADMIN = "admin"  # the role whose keys stand in every team (``identity.roles.ADMIN``)


def lapse(member: Member | None, team: str | None, now: datetime, max_age: float) -> str | None:
    """Say why a key of ``team`` whose owner the provider last described as ``member`` no longer works; None
    while it does."""
    if member is None:
        return f"lapsed: the identity provider never confirmed its owner here; {SIGN_IN_AGAIN}"
    if member.lost_at is not None:
        return f"lapsed: the identity provider no longer vouches for its owner ({member.note})"
    if member.team != team and member.role != ADMIN:
        now_in = f"team '{member.team}'" if member.team else "no team"
        return f"lapsed: at the identity provider its owner is in {now_in}, not in team '{team}'"
    if now - member.confirmed_at > timedelta(seconds=max_age):
        return (f"lapsed: the identity provider last confirmed its owner in team '{team}' at "
                f"{member.confirmed_at:%Y-%m-%d %H:%M} UTC, longer ago than admin.oidc.membership_max_age; "
                f"{SIGN_IN_AGAIN}")
    return None


def lapses(keys: Iterable[ApiKey], members: Iterable[Member], now: datetime, max_age: float) -> dict[str, str]:
    """Map the name of every owned key among ``keys`` that lapsed to why."""
    by_subject = {member.subject: member for member in members}
    found = {key.name: lapse(by_subject.get(key.owner), key.team, now, max_age) for key in keys if key.owner}
    return {name: why for name, why in found.items() if why is not None}
