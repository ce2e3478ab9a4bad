"""Name the four roles a person may hold on the admin page, from the most to the least.

- ``admin``: everything (the password login is always this one);
- ``viewer``: reads every page, changes nothing;
- ``team_admin``: its own team's keys, budgets and usage, nothing else;
- ``member``: the "My keys" page alone, where they make and revoke keys of their own in their team.

What each may reach is the admin page's (``blueprints.admin.roles``); which one a person holds,
the identity provider's claims say (``claims``).
"""

from __future__ import annotations

ADMIN, VIEWER, TEAM_ADMIN, MEMBER = "admin", "viewer", "team_admin", "member"
ROLES = (ADMIN, VIEWER, TEAM_ADMIN, MEMBER)
LABELS = {ADMIN: "admin", VIEWER: "viewer", TEAM_ADMIN: "team admin", MEMBER: "member"}
