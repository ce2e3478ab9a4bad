"""Say who answers for a key made on the keys page, and whose person budget a team admin may set.

A key someone signed in with the identity provider makes is owned: by them, or, for a service key
(a shared front end's, a pipeline's), by the person named responsible for it, a person of the key's
team (the maker by default). Either way the owner's membership holds the key (it lapses with them,
``access.membership``), it counts toward their ``admin.max_keys_per_member`` and their person budget.
An admin's own making is not refused at the cap (an admin sets the cap, and the command line has
none), though the keys count. A key made by the password login has no owner: the operator answers
for it, as for the command line's.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app, session

from ollama_proxy.access.membership import lapse
from ollama_proxy.blueprints.admin.roles import check_scope, current_role, team_scope
from ollama_proxy.errors import Forbidden
from ollama_proxy.identity.roles import ADMIN
from ollama_proxy.store import Member, current_store


class Unowned(ValueError):
    """No one may answer for the key as asked: the reason, for the form."""


def people_in_scope() -> list[Member]:
    """The people the identity provider vouches for that this session may name responsible for a key: its team's
    (a team admin's), or everyone's (an admin's)."""
    scope = team_scope()
    return [member for member in current_store().list_members()
            if member.lost_at is None and (scope is None or member.team == scope)]


def owner_fields(service: bool, responsible: str, team: str | None) -> dict:
    """The fields that say who answers for a key of ``team`` made now: ``owner``, ``service``, ``max_owned``.

    ``responsible``: the subject a service key names (empty: the maker). Raise Unowned when that person's key
    would lapse at once, or a service key names no one (a password session is no person).
    """
    owner = (responsible or session.get("subject")) if service else session.get("subject")
    if owner is None:
        if service:
            raise Unowned("name the person responsible for the service key: the password login is no person")
        return {}
    member = current_store().get_member(owner)
    if service and team_scope() is not None:
        check_scope(member.team if member else None, f"The person '{owner}'")
    why = lapse(member, team, datetime.now(timezone.utc), _settings().oidc.membership_max_age)
    if why is not None:
        who = f"the person '{owner}'" if service and responsible else "you"
        raise Unowned(f"a key {who} answered for would stop at once, {why}")
    fields = {"owner": owner, "service": service}
    return fields if current_role() == ADMIN else {**fields, "max_owned": _settings().max_keys_per_member}


def check_person(subject: str) -> None:
    """Refuse (403) a team admin's budget of a person the identity provider does not put in its team, or of
    itself: one's own budget is an admin's to set."""
    if team_scope() is None:
        return
    if subject == session.get("subject"):
        raise Forbidden("Your own person budget is set by an admin: a team admin sets its team's people's.")
    member = current_store().get_member(subject)
    check_scope(member.team if member else None, f"The person '{subject}'")


def _settings():
    return current_app.config["SETTINGS"].admin
