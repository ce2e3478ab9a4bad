"""What each role may open and change."""

from __future__ import annotations

import pytest
from flask import Flask, session

from ollama_proxy.blueprints.admin.roles import current_role, may, team_scope


@pytest.mark.parametrize("role, endpoint, method, allowed", [
    ("admin", "admin.create_team", "POST", True),
    ("viewer", "admin.teams", "GET", True),
    ("viewer", "admin.audit", "GET", True),
    ("viewer", "admin.create_key", "POST", False),
    ("viewer", "admin.create_my_key", "POST", False),
    ("viewer", "admin.logout", "POST", True),
    ("team_admin", "admin.keys", "GET", True),
    ("team_admin", "admin.delete_key", "POST", True),
    ("team_admin", "admin.set_budget", "POST", True),
    ("team_admin", "admin.usage", "GET", True),
    ("team_admin", "admin.my_keys", "GET", True),
    ("team_admin", "admin.teams", "GET", False),
    ("team_admin", "admin.create_team", "POST", False),
    ("team_admin", "admin.set_alias", "POST", False),
    ("team_admin", "admin.set_override", "POST", False),
    ("team_admin", "admin.audit", "GET", False),
    ("team_admin", "admin.dashboard", "GET", False),
    ("member", "admin.my_keys", "GET", True),
    ("member", "admin.create_my_key", "POST", True),
    ("member", "admin.revoke_my_key", "POST", True),
    ("member", "admin.keys", "GET", False),
    ("member", "admin.dashboard", "GET", False),
    ("member", "admin.logout", "POST", True),
    ("member", None, "GET", False),
    ("stranger", "admin.keys", "GET", False),
])
def test_each_role_may_open_what_the_table_says(role, endpoint, method, allowed):
    assert may(role, endpoint, method) is allowed


@pytest.mark.parametrize("held, role, scope", [
    ({"user": "admin", "login": "f"}, "admin", None),  # a password session: the admin's
    ({"via": "oidc", "role": "admin", "team": "red"}, "admin", None),
    ({"via": "oidc", "role": "viewer", "team": "red"}, "viewer", None),
    ({"via": "oidc", "role": "team_admin", "team": "red"}, "team_admin", "red"),
    ({"via": "oidc", "role": "member", "team": "red"}, "member", "red"),
    ({"via": "oidc", "role": "member", "team": None}, "member", ""),  # bound to no team: never to every team
    ({"via": "oidc", "role": "owner", "team": "red"}, "member", "red"),  # a role it does not know: the least
])
def test_the_session_gives_the_role_and_the_teams_in_view(held, role, scope):
    app = Flask(__name__)
    app.secret_key = "k" * 40
    with app.test_request_context():
        session.update(held)
        assert (current_role(), team_scope()) == (role, scope)
