"""Read an identity provider's claims as a role on the admin page, a team, and a name for the audit trail.

One person gets one role, the first that their claims give of: admin, team admin, viewer, member
(a team admin of a team reads its keys and changes them, which a viewer cannot; a viewer reads
every team's, which a team admin cannot: neither is more than the other, and a team admin's
power to change wins). No role and no team: no access at all (``grant`` returns None).
"""

from __future__ import annotations

from dataclasses import dataclass

from ollama_proxy.config.identity import OidcSettings
from ollama_proxy.identity.roles import ADMIN, MEMBER, TEAM_ADMIN, VIEWER

NAME_CLAIMS = ("email", "sub")  # after the configured username_claim, in this order
LONGEST_NAME = 255  # what the audit trail keeps of an actor


@dataclass(frozen=True)
class Grant:
    """What a signed-in person may do: a role, and the team that role is bound to (None: none)."""

    role: str
    team: str | None = None


def values_of(claims: dict, name: str) -> list[str]:
    """The strings a claim holds: a list's strings, or one string; nothing for anything else."""
    value = claims.get(name) if name else None
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, str) and item]
    return []


def _after(prefix: str, values: list[str]) -> str | None:
    """The first team named as ``<prefix><team>`` among ``values``, if any (never with an empty prefix)."""
    if not prefix:
        return None
    return next((value[len(prefix):] for value in values if value.startswith(prefix) and value != prefix), None)


def grant(claims: dict, oidc: OidcSettings) -> Grant | None:
    """Map an ID token's (or userinfo's) claims to a Grant, or None when they give no access."""
    values = values_of(claims, oidc.roles_claim)
    named_team = next(iter(values_of(claims, oidc.team_claim)), None)
    member_of = named_team or _after(oidc.member_prefix, values)
    if any(value in oidc.admin_values for value in values):
        return Grant(ADMIN, member_of)
    team_admin_of = _after(oidc.team_admin_prefix, values)
    if team_admin_of is None and named_team and any(value in oidc.team_admin_values for value in values):
        team_admin_of = named_team
    if team_admin_of is not None:
        return Grant(TEAM_ADMIN, team_admin_of)
    if any(value in oidc.viewer_values for value in values):
        return Grant(VIEWER, member_of)
    if member_of is not None:
        return Grant(MEMBER, member_of)
    return None


def claims_options(oidc: OidcSettings) -> dict:
    """What an ID token must say besides a good signature, nonce and times: our issuer, and us among its audience."""
    return {"iss": {"essential": True, "value": oidc.issuer}, "aud": {"essential": True, "value": oidc.client_id}}


def person(claims: dict, oidc: OidcSettings) -> str:
    """The name a person goes by in the audit trail: ``username_claim``, else their email, else their subject."""
    for name in (oidc.username_claim, *NAME_CLAIMS):
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:LONGEST_NAME]
    return "an unnamed user"
