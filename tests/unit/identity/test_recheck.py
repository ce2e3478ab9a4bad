"""Membership re-checked at a fake provider over real sockets: a sign-in keeps the refresh token sealed, a
re-check confirms, moves or loses the person, and a session past ``recheck`` takes what the provider says now."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from ollama_proxy.blueprints.admin.session import CHECKED, start_session
from ollama_proxy.identity.provider import CLIENT
from ollama_proxy.identity.recheck import BUSY, CONFIRMED, LOST, NOTHING, UNSURE, recheck_member
from ollama_proxy.identity.recheck_loop import EXTENSION
from ollama_proxy.identity.refresh_tokens import unseal
from ollama_proxy.store import current_store
from ollama_proxy.store.schema import members
from tests.actors import TESTER
from tests.fakes.identity_provider import CLIENT_ID, CLIENT_SECRET, Authorization, FakeIdentityProvider
from tests.unit.blueprints.admin.conftest import admin_app

MIA = {"sub": "u-mia", "preferred_username": "mia", "groups": ["team:red"]}
RECHECK = 60


@pytest.fixture(scope="module")
def provider():
    provider = FakeIdentityProvider().start()
    yield provider
    provider.stop()


def oidc_app(tmp_path, issuer: str, **oidc):
    settings = {"issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "timeout": 5,
                "recheck": RECHECK, **oidc}
    return admin_app(tmp_path, admin={"oidc": settings})


@pytest.fixture
def app(tmp_path, provider):
    provider.down = False
    app = oidc_app(tmp_path, provider.issuer)
    yield app
    current_store(app).close()


def sign_in(client, provider, claims: dict):
    answer = client.get("/admin/login/oidc")
    query = {name: values[0] for name, values in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    authorization = Authorization(query["state"], query["nonce"], query["code_challenge"],
                                  query["code_challenge_method"], query["redirect_uri"], query["scope"])
    code = provider.grant(authorization, claims)
    signed = client.get("/admin/login/oidc/callback", query_string={"code": code, "state": query["state"]})
    assert signed.status_code == 302, signed.get_data(as_text=True)
    return client


def recheck(app, subject: str = "u-mia") -> str:
    with app.app_context():
        return recheck_member(current_store(), app.extensions[CLIENT], app.config["SETTINGS"].admin.oidc,
                              app.secret_key, subject, datetime.now(timezone.utc))


def member(app, subject: str = "u-mia"):
    return current_store(app).get_member(subject)


def kept_token(app, subject: str = "u-mia") -> str | None:
    with current_store(app).engine.connect() as connection:
        sealed = connection.execute(select(members.c.refresh_token).where(members.c.subject == subject)).scalar()
    return None if sealed is None else unseal(app.secret_key, sealed)


def age(app, client, seconds: float) -> None:
    """Make the session's role, and the provider's last word on the person, ``seconds`` older."""
    with client.session_transaction("/admin") as session:
        session[CHECKED] -= seconds
    before = member(app)
    with current_store(app).engine.begin() as connection:
        connection.execute(members.update().values(confirmed_at=before.confirmed_at - timedelta(seconds=seconds),
                                                   checked_at=before.checked_at - timedelta(seconds=seconds)))


def test_a_sign_in_keeps_the_refresh_token_sealed_in_the_store_and_out_of_the_cookie(app, provider):
    client = sign_in(app.test_client(), provider, MIA)
    issued = [token for token, subject in provider.refresh_tokens.items() if subject == "u-mia"]
    assert kept_token(app) == issued[-1]
    with current_store(app).engine.connect() as connection:
        assert issued[-1] not in connection.execute(select(members.c.refresh_token)).scalar()
    assert all(issued[-1] not in cookie.value for cookie in client._cookies.values())
    found = member(app)
    assert (found.name, found.role, found.team, found.renewable) == ("mia", "member", "red", True)


def test_a_recheck_confirms_a_member_and_keeps_the_rotated_token(app, provider):
    sign_in(app.test_client(), provider, MIA)
    before, used = member(app), kept_token(app)
    assert recheck(app) == CONFIRMED
    assert member(app).confirmed_at > before.confirmed_at
    assert kept_token(app) not in (None, used) and used not in provider.refresh_tokens  # rotated
    assert provider.token_requests[-1]["grant_type"] == "refresh_token"


def test_a_member_removed_from_the_group_is_lost_and_the_trail_says_so(app, provider):
    sign_in(app.test_client(), provider, MIA)
    provider.people["u-mia"]["groups"] = ["staff"]
    assert recheck(app) == LOST
    found = member(app)
    assert found.lost_at is not None and not found.renewable and "no role and no team" in found.note
    entry = current_store(app).audit_trail()[-1]
    assert (entry.action, entry.target, entry.actor, entry.actor_kind) == (
        "member.lost", "mia", "identity provider", "oidc")
    assert recheck(app) == NOTHING  # nothing left to ask with


def test_a_disabled_member_whose_grant_the_provider_refuses_is_lost(app, provider):
    sign_in(app.test_client(), provider, MIA)
    del provider.people["u-mia"]
    assert recheck(app) == LOST
    assert "invalid_grant" in member(app).note


def test_a_member_moved_to_another_team_is_confirmed_there(app, provider):
    sign_in(app.test_client(), provider, MIA)
    provider.people["u-mia"]["groups"] = ["team:blue"]
    assert recheck(app) == CONFIRMED
    assert (member(app).role, member(app).team) == ("member", "blue")


def test_a_provider_that_is_down_settles_nothing(app, provider):
    sign_in(app.test_client(), provider, MIA)
    before = member(app)
    provider.down = True
    assert recheck(app) == UNSURE
    after = member(app)
    assert after.confirmed_at == before.confirmed_at and after.lost_at is None and after.renewable
    assert "could not be reached, or answered no JSON" in after.note


def test_a_recheck_another_worker_holds_is_left_to_it(app, provider):
    sign_in(app.test_client(), provider, MIA)
    now = datetime.now(timezone.utc)
    assert current_store(app).claim_member_check("u-mia", now=now, until=now + timedelta(seconds=30))
    assert recheck(app) == BUSY


def test_a_round_rechecks_those_due_alone(app, provider):
    sign_in(app.test_client(), provider, MIA)
    rounds = app.extensions[EXTENSION]
    assert rounds.run_round() == {}  # just signed in
    asked = len(provider.token_requests)
    with current_store(app).engine.begin() as connection:
        connection.execute(members.update().values(checked_at=datetime.now(timezone.utc) - timedelta(hours=1)))
    assert rounds.run_round() == {"u-mia": CONFIRMED}
    assert len(provider.token_requests) == asked + 1


def page_text(answer) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.get_data(as_text=True)))


def test_a_session_keeps_its_role_until_recheck_then_takes_the_providers_word(app, provider):
    client = sign_in(app.test_client(), provider, MIA)
    asked = len(provider.token_requests)
    assert client.get("/admin/my-keys").status_code == 200
    assert len(provider.token_requests) == asked  # not due
    age(app, client, RECHECK + 1)
    assert client.get("/admin/my-keys").status_code == 200
    assert len(provider.token_requests) == asked + 1  # asked again, and still in
    assert datetime.now(timezone.utc) - member(app).confirmed_at < timedelta(seconds=30)
    assert client.get("/admin/my-keys").status_code == 200
    assert len(provider.token_requests) == asked + 1  # the store holds the provider's fresh word
    age(app, client, RECHECK + 1)
    provider.people["u-mia"]["groups"] = []
    ended = client.get("/admin/my-keys")
    assert ended.status_code == 403 and "no longer gives you a role or a team here" in page_text(ended)
    assert client.get("/admin/my-keys").status_code == 302  # the session is gone


def test_a_session_takes_a_newer_confirmation_from_the_store_without_asking(app, provider):
    client = sign_in(app.test_client(), provider, MIA)
    age(app, client, RECHECK + 1)
    current_store(app).confirm_member("u-mia", name="mia", role="team_admin", team="red", refresh_token=None,
                                      now=datetime.now(timezone.utc))
    asked = len(provider.token_requests)
    assert client.get("/admin/keys").status_code == 200  # a team admin's page, now
    assert len(provider.token_requests) == asked


def test_a_session_with_no_refresh_token_signs_in_again_through_the_provider(tmp_path, provider):
    app = oidc_app(tmp_path, provider.issuer, scopes=["openid", "profile"])
    client = sign_in(app.test_client(), provider, MIA)
    assert not member(app).renewable
    age(app, client, RECHECK + 1)
    answer = client.get("/admin/my-keys?x=1")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin/login/oidc?next=/admin/my-keys?x%3D1"
    current_store(app).close()


def test_the_keys_page_shows_a_key_that_lapsed_with_its_owner_and_my_keys_says_why(app, provider):
    store = current_store(app)
    store.create_team("red", by=TESTER)
    mia = sign_in(app.test_client(), provider, MIA)
    store.create_key("mia-laptop", team="red", owner="u-mia", by=TESTER)
    store.create_key("mia-old", team="red", owner="u-mia", by=TESTER)
    admin = app.test_client()
    with admin.session_transaction("/admin") as session:
        start_session(session, app.config["SETTINGS"].admin)
    assert "lapsed" not in admin.get("/admin/keys").get_data(as_text=True)
    store.confirm_member("u-mia", name="mia", role="member", team="blue", refresh_token=None,
                         now=datetime.now(timezone.utc))
    page = admin.get("/admin/keys").get_data(as_text=True)
    assert page.count('class="badge bad lapsed" title="lapsed: at the identity provider its owner is in team '
                      '&#39;blue&#39;, not in team &#39;red&#39;"') == 2
    with mia.session_transaction("/admin") as session:
        session["team"] = "red"  # as her session still says, until its next re-check
    assert "its owner is in team &#39;blue&#39;, not in team &#39;red&#39;" in mia.get("/admin/my-keys").get_data(
        as_text=True)
