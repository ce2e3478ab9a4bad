"""Say what the person signed in may do on the admin page: their role, the team they are bound to, the pages.

Four roles (``identity.roles``): an admin reaches everything, a viewer reads every page, a team
admin its own team's keys, budgets and usage, a member the "My keys" page alone.

A password session holds no role: it is an admin's. A single sign-on session holds the role and
the team the identity provider's claims gave at sign-in (``identity.claims``).
"""

from __future__ import annotations

from flask import session

from ollama_proxy.errors import Forbidden
from ollama_proxy.identity.roles import ADMIN, MEMBER, ROLES, TEAM_ADMIN, VIEWER

READS = frozenset({"GET", "HEAD", "OPTIONS"})

SIGN_OUT = "admin.logout"  # anyone signed in may leave, a viewer too
# A member's pages, a team admin's too: the keys they made for themselves in their team.
MY_KEYS = frozenset({"admin.my_keys", "admin.create_my_key", "admin.my_key_created", "admin.revoke_my_key",
                     "admin.rotate_my_key", "admin.my_key_rotated"})
# What a team admin reaches besides: its team's keys, budgets and usage (each page keeps to the team).
TEAM_PAGES = frozenset({"admin.keys", "admin.create_key", "admin.key_created", "admin.edit_key", "admin.enable_key",
                        "admin.rotate_key", "admin.key_rotated", "admin.delete_key", "admin.hand_over_key",
                        "admin.budgets",
                        "admin.set_budget", "admin.clear_budget", "admin.usage", "admin.usage_csv",
                        "admin.usage_report", "admin.usage_report_csv"})
# The page each role lands on after signing in.
LANDING = {ADMIN: "admin.dashboard", VIEWER: "admin.dashboard", TEAM_ADMIN: "admin.keys", MEMBER: "admin.my_keys"}


def current_role() -> str:
    """The role of this request's session: ``admin``, ``viewer``, ``team_admin`` or ``member``."""
    role = session.get("role", ADMIN)  # a password session carries none: it is the admin's
    return role if role in ROLES else MEMBER  # a role this version does not know gets the least


def team_scope() -> str | None:
    """The one team whose keys, budgets and usage this session may see; None: every team's."""
    if current_role() in (ADMIN, VIEWER):
        return None
    return str(session.get("team") or "")  # bound to a team, or to none at all: never to every team


def current_team() -> str | None:
    """The team the person signed in belongs to, if the identity provider named one."""
    return session.get("team") or None


def may(role: str, endpoint: str | None, method: str) -> bool:
    """Tell whether ``role`` may call ``endpoint`` (a view's name, ``admin.keys``) with ``method``."""
    if role == ADMIN or endpoint == SIGN_OUT:
        return True
    if role == VIEWER:
        return method in READS
    if role == TEAM_ADMIN:
        return endpoint in TEAM_PAGES or endpoint in MY_KEYS
    return role == MEMBER and endpoint in MY_KEYS


def in_scope(team: str | None) -> bool:
    """Tell whether something of ``team`` (a key's, a budget's) is this session's to see and change."""
    scope = team_scope()
    return scope is None or team == scope


def check_scope(team: str | None, what: str) -> None:
    """Refuse (403) to show or change ``what``, which is ``team``'s, to someone bound to another team."""
    if not in_scope(team):
        raise Forbidden(f"{what} is not of your team ({team_scope()}).")
