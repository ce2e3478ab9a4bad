"""Who answers for a key made on the keys page, and whose person budget a team admin sets (Flask's test client)."""

from __future__ import annotations

import html

import pytest

from ollama_proxy.store import current_store
from tests.actors import TESTER
from tests.unit.blueprints.admin.test_roles import OIDC, post, signed_in_as, text_of

CAP = 2
BUDGET = {"period": "day", "unit": "tokens", "amount": "1", "mode": "hard"}


@pytest.fixture
def app_sections():
    return {"admin": {"oidc": OIDC, "max_keys_per_member": CAP}}


@pytest.fixture
def store(app):
    store = current_store(app)
    for team in ("red", "blue"):
        store.create_team(team, by=TESTER)
    return store


def said(answer) -> str:
    return html.unescape(text_of(answer))


def new_key(client, name: str, team: str = "red", **fields):
    return post(client, "/admin/keys", "/admin/keys", name=name, scope="generate", team=team, **fields)


def test_a_team_admins_keys_are_hers_up_to_the_cap(app, store):
    lead = signed_in_as(app, "team_admin", "red", user="tom")
    assert [new_key(lead, f"red-{n}").status_code for n in range(CAP)] == [303] * CAP
    refused = new_key(lead, "red-over")
    assert refused.status_code == 400 and f"at most {CAP} keys" in said(refused)
    assert [(k.name, k.owner, k.service) for k in store.list_keys()] == [("red-0", "sub-tom", False),
                                                                         ("red-1", "sub-tom", False)]


def test_a_service_key_is_its_responsible_persons_of_the_team_and_audited_so(app, store):
    signed_in_as(app, "member", "red", user="mia")
    signed_in_as(app, "member", "blue", user="bob")
    lead = signed_in_as(app, "team_admin", "red", user="tom")
    page = lead.get("/admin/keys").get_data(as_text=True)
    assert 'value="sub-mia"' in page and 'value="sub-bob"' not in page  # the team's people to choose from
    assert new_key(lead, "red-webui", service="y", responsible="sub-mia").status_code == 303
    assert new_key(lead, "red-ci", service="y").status_code == 303  # the maker, by default
    assert new_key(lead, "red-bob", service="y", responsible="sub-bob").status_code == 400  # not a choice here
    keys = {k.name: (k.owner, k.service) for k in store.list_keys()}
    assert keys == {"red-webui": ("sub-mia", True), "red-ci": ("sub-tom", True)}
    made = next(e for e in store.audit_trail() if e.target == "red-webui")
    assert (made.actor, made.after["owner"], made.after["service"]) == ("tom", "sub-mia", True)
    assert "service key, responsible sub-mia" in said(lead.get("/admin/keys"))


def test_an_admin_names_anyone_whose_key_would_stand_and_a_password_session_owns_nothing(app, store, client):
    signed_in_as(app, "member", "blue", user="bob")
    admin = signed_in_as(app, "admin", user="ada")
    assert [new_key(admin, f"red-{n}").status_code for n in range(CAP + 1)] == [303] * (CAP + 1)  # not capped
    refused = new_key(admin, "bob-red", service="y", responsible="sub-bob")  # bob is in blue
    assert refused.status_code == 400 and "its owner is in team 'blue', not in team 'red'" in said(refused)
    assert new_key(admin, "bob-blue", team="blue", service="y", responsible="sub-bob").status_code == 303
    assert new_key(client, "operators").status_code == 303  # the password login: no person
    unnamed = new_key(client, "operators-svc", service="y")
    assert unnamed.status_code == 400 and "name the person responsible" in said(unnamed)
    owners = {k.name: k.owner for k in store.list_keys()}
    assert owners == {"red-0": "sub-ada", "red-1": "sub-ada", "red-2": "sub-ada", "bob-blue": "sub-bob",
                      "operators": None}


def test_a_team_admin_sets_and_clears_budgets_of_its_teams_people_not_its_own_nor_another_teams(app, store):
    for user, team in (("mia", "red"), ("bob", "blue")):
        signed_in_as(app, "member", team, user=user)
        store.create_key(f"{user}-laptop", team=team, owner=f"sub-{user}", by=TESTER)
    lead = signed_in_as(app, "team_admin", "red", user="tom")
    store.create_key("tom-laptop", team="red", owner="sub-tom", by=TESTER)
    assert post(lead, "/admin/budgets", "/admin/budgets", holder_kind="person", holder="sub-mia",
                **BUDGET).status_code == 303
    for holder, why in (("sub-bob", "is not of your team"), ("sub-tom", "set by an admin"),
                        ("sub-nobody", "is not of your team")):
        refused = post(lead, "/admin/budgets", "/admin/budgets", holder_kind="person", holder=holder, **BUDGET)
        assert refused.status_code == 403 and why in said(refused), holder
    store.set_budget("person", "sub-bob", period="day", unit="tokens", amount=5, by=TESTER)
    clear = {"holder_kind": "person", "period": "day", "unit": "tokens"}
    assert post(lead, "/admin/budgets/clear", "/admin/budgets", holder="sub-bob", **clear).status_code == 403
    page = lead.get("/admin/budgets").get_data(as_text=True)
    assert 'data-budget="person sub-mia day tokens"' in page and '<option value="person"' in page
    assert post(lead, "/admin/budgets/clear", "/admin/budgets", holder="sub-mia", **clear).status_code == 302
    assert [(b.holder_kind, b.holder) for b in store.list_budgets()] == [("person", "sub-bob")]
    trail = [(e.action, e.target) for e in store.audit_trail() if e.action.startswith("budget") and e.actor == "tom"]
    assert trail == [("budget.set", "person sub-mia"), ("budget.clear", "person sub-mia")]


def test_a_service_key_is_handed_over_within_the_team_and_a_persons_own_key_never(app, store):
    signed_in_as(app, "member", "red", user="mia")
    signed_in_as(app, "member", "blue", user="bob")
    lead = signed_in_as(app, "team_admin", "red", user="tom")
    assert new_key(lead, "red-webui", service="y").status_code == 303
    assert new_key(lead, "tom-laptop").status_code == 303
    page = lead.get("/admin/keys/red-webui").get_data(as_text=True)
    assert 'id="hand-over"' in page and 'value="sub-mia"' in page and 'value="sub-bob"' not in page
    handed = post(lead, "/admin/keys/red-webui/responsible", "/admin/keys/red-webui", responsible="sub-mia")
    assert handed.status_code == 302 and store.get_key("red-webui").owner == "sub-mia"
    for name, to in (("red-webui", "sub-bob"), ("tom-laptop", "sub-mia")):  # another team's; a person's own key
        post(lead, f"/admin/keys/{name}/responsible", f"/admin/keys/{name}", responsible=to)
    assert {k.name: k.owner for k in store.list_keys()} == {"red-webui": "sub-mia", "tom-laptop": "sub-tom"}
    assert 'id="hand-over"' not in lead.get("/admin/keys/tom-laptop").get_data(as_text=True)
    updates = [e for e in store.audit_trail() if e.action == "key.update"]
    assert [(e.actor, e.before["owner"], e.after["owner"]) for e in updates] == [("tom", "sub-tom", "sub-mia")]
