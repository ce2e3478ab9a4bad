"""What each role may open and change: the table, then the guard and the pages through Flask's test client."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest
from flask import Flask, session

from ollama_proxy.blueprints.admin.roles import current_role, may, team_scope
from ollama_proxy.blueprints.admin.session import start_oidc_session
from ollama_proxy.store import current_store
from tests.actors import TESTER
from tests.unit.blueprints.admin.conftest import csrf_token

OIDC = {"issuer": "https://sso.example.com/realms/acme", "client_id": "proxy"}


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


@pytest.fixture
def app_sections():
    return {"admin": {"oidc": OIDC}}


def signed_in_as(app, role: str, team: str | None = None, user: str = "ann"):
    """A client signed in as the provider's ``user``, whom the store's member row confirms, as a sign-in does."""
    client = app.test_client()
    with client.session_transaction("/admin") as session:
        start_oidc_session(session, app.config["SETTINGS"].admin.oidc, user=user, subject=f"sub-{user}",
                           role=role, team=team, checked=time.time())
    current_store(app).confirm_member(f"sub-{user}", name=user, role=role, team=team, refresh_token=None,
                                      now=datetime.now(timezone.utc))
    return client


def post(client, path: str, form_page: str, **fields):
    return client.post(path, data={"csrf_token": csrf_token(client, form_page), **fields})


def text_of(answer) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.get_data(as_text=True)))


def test_a_viewer_reads_every_page_and_changes_nothing(app, store):
    viewer = signed_in_as(app, "viewer")
    for page in ("/admin", "/admin/keys", "/admin/teams", "/admin/budgets", "/admin/audit", "/admin/models"):
        assert viewer.get(page).status_code == 200, page
    refused = post(viewer, "/admin/keys", "/admin/keys", name="sneaky", scope="generate")
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert "A viewer reads the admin page but changes nothing." in text_of(refused)
    assert post(viewer, "/admin/teams", "/admin/teams", name="t").status_code == 403
    assert store.list_keys() == [] and store.list_teams() == []


def test_the_page_says_who_is_signed_in_as_what(app):
    page = text_of(signed_in_as(app, "team_admin", "red", user="tom").get("/admin/keys"))
    assert "tom (team admin, team red)" in page
    assert "Teams" not in page.split("Log out")[0]  # the bar offers only the pages the role may open


@pytest.fixture
def store(app):
    """The app's store, with no app context held open: several clients' requests must not share one ``g``."""
    return current_store(app)


@pytest.fixture
def two_teams(store):
    for team in ("red", "blue"):
        store.create_team(team, by=TESTER)
        store.create_key(f"{team}-key", team=team, by=TESTER)
    store.create_key("loose-key", by=TESTER)
    return store


def test_a_team_admin_sees_and_changes_its_teams_keys_alone(app, two_teams):
    lead = signed_in_as(app, "team_admin", "red")
    listing = lead.get("/admin/keys").get_data(as_text=True)
    assert 'data-key="red-key"' in listing and 'data-key="blue-key"' not in listing
    assert 'data-key="loose-key"' not in listing
    assert lead.get("/admin/keys/blue-key").status_code == 403
    for path in ("/admin/keys/blue-key/delete", "/admin/keys/blue-key/enabled/0", "/admin/keys/loose-key/delete"):
        assert post(lead, path, "/admin/keys").status_code == 403, path
    assert post(lead, "/admin/keys", "/admin/keys", name="x", scope="generate", team="blue").status_code in (400, 403)
    assert post(lead, "/admin/keys", "/admin/keys", name="y", scope="generate").status_code == 403  # no team
    assert post(lead, "/admin/keys", "/admin/keys", name="z", scope="manage", team="red").status_code == 403
    assert {key.name for key in two_teams.list_keys()} == {"red-key", "blue-key", "loose-key"}
    made = post(lead, "/admin/keys", "/admin/keys", name="red-2", scope="generate", team="red")
    assert made.status_code == 303 and two_teams.get_key("red-2").team == "red"
    assert post(lead, "/admin/keys/red-key/delete", "/admin/keys").status_code == 302
    assert two_teams.get_key("red-key") is None
    kinds = {(entry.actor, entry.actor_kind) for entry in two_teams.audit_trail() if entry.actor != "tester"}
    assert kinds == {("ann", "oidc")}


def test_a_team_admin_cannot_touch_teams_aliases_or_overrides(app, two_teams):
    lead = signed_in_as(app, "team_admin", "red")
    assert lead.get("/admin/teams").status_code == 403
    assert lead.get("/admin/audit").status_code == 403
    for path, fields in (("/admin/teams/red", {"weight": "2"}), ("/admin/teams/blue/delete", {}),
                         ("/admin/models/aliases", {"alias-alias": "a", "alias-target": "b"}),
                         ("/admin/models/overrides", {"override-model": "m"})):
        assert post(lead, path, "/admin/keys", **fields).status_code == 403, path
    assert two_teams.get_team("red").weight == 1.0


def test_a_team_admin_sets_budgets_of_its_keys_alone_and_sees_its_teams(app, two_teams):
    lead = signed_in_as(app, "team_admin", "red")
    budget = {"period": "day", "unit": "tokens", "amount": "100", "mode": "hard"}
    two_teams.set_budget("team", "red", period="day", unit="tokens", amount=50, mode="hard", by=TESTER)
    assert post(lead, "/admin/budgets", "/admin/budgets", holder_kind="key", holder="red-key",
                **budget).status_code == 303
    raised = post(lead, "/admin/budgets", "/admin/budgets", holder_kind="team", holder="red", **budget)
    assert raised.status_code == 403 and "set by an admin" in text_of(raised)  # the department's cap stays
    assert post(lead, "/admin/budgets/clear", "/admin/budgets", holder_kind="team", holder="red", period="day",
                unit="tokens").status_code == 403
    assert [(b.holder, b.amount) for b in two_teams.list_budgets() if b.holder_kind == "team"] == [("red", 50.0)]
    shown = lead.get("/admin/budgets").get_data(as_text=True)
    assert '<option value="team"' not in shown and shown.count('class="danger">Clear</button>') == 1  # its key's
    for kind, holder in (("team", "blue"), ("key", "blue-key"), ("key", "loose-key"), ("key", "nothing")):
        assert post(lead, "/admin/budgets", "/admin/budgets", holder_kind=kind, holder=holder,
                    **budget).status_code == 403, holder
    two_teams.set_budget("team", "blue", period="day", unit="tokens", amount=5, mode="hard", by=TESTER)
    page = lead.get("/admin/budgets").get_data(as_text=True)
    assert 'data-budget="team red day tokens"' in page and 'data-budget="key red-key day tokens"' in page
    assert "blue" not in page
    assert post(lead, "/admin/budgets/clear", "/admin/budgets", holder_kind="team", holder="blue", period="day",
                unit="tokens").status_code == 403


def test_a_member_makes_and_revokes_keys_of_their_own_in_their_team(app, two_teams):
    member = signed_in_as(app, "member", "red", user="mia")
    assert member.get("/admin/keys").status_code == 403
    assert member.get("/admin").status_code == 403
    made = post(member, "/admin/my-keys", "/admin/my-keys", name="mia-laptop", models="llama3*")
    assert made.status_code == 303
    created = member.get(made.headers["Location"])
    assert created.status_code == 200 and re.search(r"op-[A-Za-z0-9_-]{43}", created.get_data(as_text=True))
    key = two_teams.get_key("mia-laptop")
    assert (key.team, key.owner, key.scope, key.models, key.web, key.cloud) == (
        "red", "sub-mia", "generate", ("llama3*",), False, False)
    other = signed_in_as(app, "member", "red", user="max")
    assert 'data-key="mia-laptop"' not in other.get("/admin/my-keys").get_data(as_text=True)
    assert post(other, "/admin/my-keys/mia-laptop/revoke", "/admin/my-keys").status_code == 403
    assert post(member, "/admin/my-keys/red-key/revoke", "/admin/my-keys").status_code == 403  # the team's, not hers
    assert 'data-key="mia-laptop"' in member.get("/admin/my-keys").get_data(as_text=True)
    assert post(member, "/admin/my-keys/mia-laptop/revoke", "/admin/my-keys").status_code == 302
    assert two_teams.get_key("mia-laptop") is None
    actions = [(e.action, e.actor, e.actor_kind) for e in two_teams.audit_trail() if e.target == "mia-laptop"]
    assert actions == [("key.create", "mia", "oidc"), ("key.delete", "mia", "oidc")]


def test_someone_in_no_team_has_no_keys_of_their_own(app, store):
    viewer = signed_in_as(app, "viewer")
    answer = viewer.get("/admin/my-keys")
    assert answer.status_code == 403 and "you are in none" in text_of(answer)
    assert "My keys" not in text_of(viewer.get("/admin/keys")).split("Log out")[0]


def test_a_password_session_is_the_admin(client, store):
    assert client.get("/admin/teams").status_code == 200
    assert post(client, "/admin/teams", "/admin/teams", name="red").status_code == 303
    assert [(e.actor, e.actor_kind) for e in store.audit_trail()] == [("admin", "admin")]


@pytest.mark.parametrize("power", ["web", "cloud", "trusted_frontend"])
def test_a_team_admin_cannot_grant_a_power_of_the_site_but_keeps_one_an_admin_gave(app, two_teams, power):
    lead = signed_in_as(app, "team_admin", "red")
    made = post(lead, "/admin/keys", "/admin/keys", name="red-2", scope="generate", team="red", **{power: "y"})
    assert made.status_code == 403 and "only an admin may" in text_of(made)
    assert two_teams.get_key("red-2") is None
    edit = {"scope": "generate", "models": "", "rpm": "", "tpm": "", "expires": "", "chat_log": "global",
            "weight": "1", "klass": "interactive", "team": "red"}
    granted = post(lead, "/admin/keys/red-key", "/admin/keys/red-key", **edit, **{power: "y"})
    assert granted.status_code == 403 and not getattr(two_teams.get_key("red-key"), power)
    two_teams.update_key("red-key", by=TESTER, **{power: True})  # an admin grants it
    kept = post(lead, "/admin/keys/red-key", "/admin/keys/red-key", **{**edit, "weight": "2"}, **{power: "y"})
    assert kept.status_code == 302 and getattr(two_teams.get_key("red-key"), power)
    assert two_teams.get_key("red-key").weight == 2.0


def test_a_team_admin_sees_the_chat_log_but_cannot_set_it_and_an_admin_can(app, two_teams):
    two_teams.update_key("red-key", chat_log=False, by=TESTER)
    lead = signed_in_as(app, "team_admin", "red")
    for page in ("/admin/keys", "/admin/keys/red-key"):
        shown = lead.get(page).get_data(as_text=True)
        assert 'name="chat_log"' not in shown and 'id="chat-log-fixed"' in shown, page
    assert re.search(r'id="chat-log-fixed">\s*off\s*<', lead.get("/admin/keys/red-key").get_data(as_text=True))
    made = post(lead, "/admin/keys", "/admin/keys", name="red-2", scope="generate", team="red", chat_log="on")
    assert made.status_code == 303 and two_teams.get_key("red-2").chat_log is None  # as chat_logs.enabled says
    edit = {"scope": "generate", "weight": "2", "klass": "interactive", "team": "red"}
    for choice in ("on", "global"):
        saved = post(lead, "/admin/keys/red-key", "/admin/keys/red-key", **edit, chat_log=choice)
        assert saved.status_code == 302 and two_teams.get_key("red-key").chat_log is False
    assert two_teams.get_key("red-key").weight == 2.0  # the rest of the form is saved
    admin = signed_in_as(app, "admin")
    assert 'name="chat_log"' in admin.get("/admin/keys/red-key").get_data(as_text=True)
    assert post(admin, "/admin/keys/red-key", "/admin/keys/red-key", **edit, chat_log="on").status_code == 302
    assert two_teams.get_key("red-key").chat_log is True


def test_a_members_own_key_follows_the_global_chat_log_whatever_they_post(app, two_teams):
    member = signed_in_as(app, "member", "red", user="mia")
    assert 'name="chat_log"' not in member.get("/admin/my-keys").get_data(as_text=True)
    made = post(member, "/admin/my-keys", "/admin/my-keys", name="mia-laptop", chat_log="on")
    assert made.status_code == 303 and two_teams.get_key("mia-laptop").chat_log is None
