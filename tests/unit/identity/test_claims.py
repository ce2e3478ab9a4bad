import pytest

from ollama_proxy.config import parse_settings
from ollama_proxy.identity.claims import Grant, grant, person, values_of


def oidc_settings(**oidc):
    base = {"issuer": "https://sso.example.com/realms/acme", "client_id": "proxy", "admin_values": ["proxy-admins"],
            "viewer_values": ["proxy-viewers"], "team_admin_values": ["proxy-team-admins"]}
    return parse_settings({"admin": {"oidc": {**base, **oidc}}}, environ={}).admin.oidc


@pytest.mark.parametrize("claims, expected", [
    ({"groups": ["proxy-admins"]}, Grant("admin")),
    ({"groups": ["proxy-admins", "team:research"]}, Grant("admin", "research")),
    ({"groups": "proxy-admins"}, Grant("admin")),  # one string, as some providers send a single group
    ({"groups": ["proxy-viewers"]}, Grant("viewer")),
    ({"groups": ["team_admin:research"]}, Grant("team_admin", "research")),
    ({"groups": ["proxy-viewers", "team_admin:research"]}, Grant("team_admin", "research")),
    ({"groups": ["proxy-team-admins"], "team": "ops"}, None),  # no team_claim configured: the team is unknown
    ({"groups": ["team:research"]}, Grant("member", "research")),
    ({"groups": ["team:research", "team:ops"]}, Grant("member", "research")),  # the first team named
    ({"groups": ["staff", "team:"]}, None),  # a prefix alone names no team
    ({"groups": ["staff"]}, None),
    ({"groups": []}, None),
    ({}, None),
    ({"groups": [{"name": "proxy-admins"}, 7, None]}, None),  # only strings count
    ({"groups": ["PROXY-ADMINS"]}, None),  # values are compared exactly
])
def test_the_groups_claim_gives_one_role(claims, expected):
    assert grant(claims, oidc_settings()) == expected


@pytest.mark.parametrize("claims, expected", [
    ({"team": "ops"}, Grant("member", "ops")),
    ({"team": ["ops", "qa"]}, Grant("member", "ops")),
    ({"team": "ops", "groups": ["proxy-team-admins"]}, Grant("team_admin", "ops")),
    ({"team": "ops", "groups": ["team_admin:research"]}, Grant("team_admin", "research")),  # named wins
    ({"team": "ops", "groups": ["proxy-viewers"]}, Grant("viewer", "ops")),
    ({"team": "", "groups": ["proxy-team-admins"]}, None),
])
def test_a_claim_naming_the_team(claims, expected):
    assert grant(claims, oidc_settings(team_claim="team")) == expected


def test_prefixes_and_the_claim_are_settings():
    oidc = oidc_settings(roles_claim="roles", team_admin_prefix="lead/", member_prefix="", admin_values=["root"])
    assert grant({"roles": ["lead/ml"]}, oidc) == Grant("team_admin", "ml")
    assert grant({"roles": ["team:ml"]}, oidc) is None  # an empty prefix: no value makes a member
    assert grant({"roles": ["root"], "groups": ["proxy-admins"]}, oidc) == Grant("admin")
    assert grant({"groups": ["proxy-admins"]}, oidc) is None  # another claim than roles_claim counts for nothing


@pytest.mark.parametrize("claims, expected", [
    ({"preferred_username": "ann", "email": "ann@example.com", "sub": "u-1"}, "ann"),
    ({"email": "ann@example.com", "sub": "u-1"}, "ann@example.com"),
    ({"preferred_username": "  ", "sub": "u-1"}, "u-1"),
    ({"preferred_username": ["ann"], "sub": "u-1"}, "u-1"),
    ({}, "an unnamed user"),
    ({"preferred_username": "x" * 300}, "x" * 255),
])
def test_a_person_is_named_by_the_first_claim_that_names_them(claims, expected):
    assert person(claims, oidc_settings()) == expected


def test_values_of_reads_strings_only():
    assert values_of({"g": ["a", "", 3, "b"]}, "g") == ["a", "b"]
    assert values_of({"g": "a"}, "g") == ["a"]
    assert values_of({"g": "a"}, "") == []
    assert values_of({"g": {"a": 1}}, "g") == []
