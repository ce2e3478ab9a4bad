"""Single sign-on through Flask's test client against a fake provider on 127.0.0.1: the checks Authlib makes
on the ID token, the state, and what a refused sign-in leaves behind."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import URLSafeTimedSerializer

from ollama_proxy.store import current_store
from tests.fakes.identity_provider import CLIENT_ID, CLIENT_SECRET, Authorization, FakeIdentityProvider, Issue
from tests.unit.blueprints.admin.conftest import admin_app, csrf_token

ADMIN = {"sub": "u-ann", "preferred_username": "ann", "groups": ["proxy-admins"]}
MEMBER = {"sub": "u-mia", "preferred_username": "mia", "groups": ["team:red"]}
NOBODY = {"sub": "u-nat", "preferred_username": "nat", "groups": ["staff"]}


@pytest.fixture(scope="module")
def provider():
    provider = FakeIdentityProvider().start()
    yield provider
    provider.stop()


def oidc_app(tmp_path, issuer: str, password: bool = True):
    oidc = {"issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "label": "Acme SSO",
            "admin_values": ["proxy-admins"], "timeout": 5}
    admin = {"oidc": oidc} if password else {"oidc": oidc, "password_hash": ""}
    return admin_app(tmp_path, admin=admin)


@pytest.fixture
def app(tmp_path, provider):
    app = oidc_app(tmp_path, provider.issuer)
    yield app
    current_store(app).close()


def to_provider(client, next_page: str = ""):
    """Press the login page's button; return the provider's URL the proxy sends the browser to, read."""
    answer = client.get("/admin/login/oidc", query_string={"next": next_page} if next_page else {})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    url = urlsplit(answer.headers["Location"])
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    return url, query


def sign_in(client, provider, claims: dict, issue: Issue | None = None, next_page: str = ""):
    url, query = to_provider(client, next_page)
    authorization = Authorization(query["state"], query["nonce"], query["code_challenge"],
                                  query["code_challenge_method"], query["redirect_uri"], query["scope"])
    code = provider.grant(authorization, claims, issue)
    return client.get("/admin/login/oidc/callback", query_string={"code": code, "state": query["state"]})


def trail(app) -> list[tuple]:
    return [(e.action, e.actor, e.actor_kind, e.after) for e in current_store(app).audit_trail()]


def signed_in(client) -> bool:
    return client.get("/admin/my-keys").status_code != 302


def test_the_login_page_offers_both_ways_in(app):
    page = app.test_client().get("/admin/login").get_data(as_text=True)
    assert "Sign in with Acme SSO" in page and 'name="password"' in page


def test_the_provider_is_asked_for_a_code_with_pkce_s256_a_nonce_and_openid(app, provider):
    url, query = to_provider(app.test_client())
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{provider.issuer}/auth"
    assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["scope"].split() == ["openid", "profile", "email", "offline_access"]
    assert query["redirect_uri"] == "http://localhost/admin/login/oidc/callback"
    assert len(query["state"]) >= 20 and len(query["nonce"]) >= 20


def test_an_admin_signs_in_and_is_recorded_as_signed_in_by_the_provider(app, provider):
    client = app.test_client()
    answer = sign_in(client, provider, ADMIN, next_page="/admin/teams")
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/teams"
    assert provider.token_requests[-1]["code_verifier"]  # the verifier went with the code
    page = client.get("/admin/teams").get_data(as_text=True)
    assert "ann" in page and "(admin)" in page
    assert trail(app)[-1] == ("sign-in", "ann", "oidc", {"subject": "u-ann", "role": "admin", "team": None})
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/teams")})
    assert trail(app)[-1][:3] == ("sign-out", "ann", "oidc") and not signed_in(client)


def test_a_member_lands_on_my_keys_whatever_page_was_asked_for(app, provider):
    answer = sign_in(app.test_client(), provider, MEMBER, next_page="/admin/teams")
    assert answer.headers["Location"] == "/admin/my-keys"


@pytest.mark.parametrize("issue, why", [
    (Issue({"aud": "another-client"}), "aud"),
    (Issue({"aud": ["another-client", "a-third"], "azp": CLIENT_ID}), "aud"),
    (Issue({"iss": "http://127.0.0.1:1/realms/test"}), "iss"),
    (Issue({"nonce": "not-the-nonce-sent"}), "nonce"),
    (Issue({"nonce": None}), "nonce"),
    (Issue({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}), "exp"),
    (Issue(foreign_key=True), "BadSignature"),
])
def test_an_id_token_that_fails_a_check_starts_no_session(app, provider, issue, why):
    client = app.test_client()
    answer = sign_in(client, provider, ADMIN, issue)
    assert answer.status_code == 401 and "Signing in with the identity provider failed" in answer.get_data(as_text=True)
    assert not signed_in(client)
    action, actor, kind, detail = trail(app)[-1]
    assert (action, actor, kind) == ("sign-in failed", "an unknown user name", "oidc")
    assert why in detail["reason"]


@pytest.mark.parametrize("query", [
    {"code": "code-x", "state": "a-state-this-browser-never-had"},
    {"code": "code-x"},
    {"error": "access_denied", "error_description": "the user said no"},
])
def test_a_callback_with_a_foreign_or_no_state_or_an_error_is_refused(app, provider, query):
    client = app.test_client()
    to_provider(client)  # this browser has a state of its own, which these do not name
    answer = client.get("/admin/login/oidc/callback", query_string=query)
    assert answer.status_code == 401 and not signed_in(client)
    assert trail(app)[-1][:3] == ("sign-in failed", "an unknown user name", "oidc")
    assert provider.token_requests == [] or provider.token_requests[-1].get("code") != "code-x"


def test_a_state_is_good_for_one_callback(app, provider):
    client = app.test_client()
    url, query = to_provider(client)
    authorization = Authorization(query["state"], query["nonce"], query["code_challenge"],
                                  query["code_challenge_method"], query["redirect_uri"], query["scope"])
    first = client.get("/admin/login/oidc/callback",
                       query_string={"code": provider.grant(authorization, ADMIN), "state": query["state"]})
    assert first.status_code == 302
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin")})
    again = client.get("/admin/login/oidc/callback",
                       query_string={"code": provider.grant(authorization, ADMIN), "state": query["state"]})
    assert again.status_code == 401 and not signed_in(client)


def test_someone_with_no_role_and_no_team_gets_a_403_page_and_no_session(app, provider):
    client = app.test_client()
    answer = sign_in(client, provider, NOBODY)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.get_data(as_text=True)))
    assert answer.status_code == 403 and "gives you no role and no team here" in text
    assert not signed_in(client)
    assert trail(app)[-1] == ("sign-in failed", "nat", "oidc", {"subject": "u-nat", "reason": "no role and no team"})


def test_a_provider_that_cannot_be_reached_is_said_so(tmp_path):
    app = oidc_app(tmp_path, "http://127.0.0.1:1/realms/none")
    client = app.test_client()
    answer = client.get("/admin/login/oidc")
    assert answer.status_code == 502 and "not possible right now" in answer.get_data(as_text=True)
    current_store(app).close()


def test_a_discovery_document_naming_another_issuer_is_refused(tmp_path, provider):
    app = oidc_app(tmp_path, provider.issuer + "/")  # the provider names itself without the slash
    client = app.test_client()
    answer = client.get("/admin/login/oidc")
    assert answer.status_code == 502
    current_store(app).close()


def test_with_no_password_the_form_is_gone_and_a_password_post_refused(tmp_path, provider):
    app = oidc_app(tmp_path, provider.issuer, password=False)
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    assert "Sign in with Acme SSO" in page and 'name="password"' not in page
    with client.session_transaction("/admin") as session:  # no page here has a form: make the token a form would
        session["csrf_token"] = "raw-token"
    token = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps("raw-token")
    answer = client.post("/admin/login", data={"csrf_token": token, "username": "admin", "password": "x"})
    assert answer.status_code == 403 and "Signing in with a password is off here" in answer.get_data(as_text=True)
    assert sign_in(client, provider, ADMIN).status_code == 302 and signed_in(client)
    current_store(app).close()


def test_a_made_up_error_description_reaches_the_trail_on_one_line_and_cut_short(app):
    client = app.test_client()
    to_provider(client)
    client.get("/admin/login/oidc/callback",
               query_string={"error": "x", "error_description": "no\nFORGED 2026 sign-in ada" + "z" * 1000})
    reason = trail(app)[-1][3]["reason"]
    assert "\n" not in reason and "no FORGED" in reason and len(reason) == 300
