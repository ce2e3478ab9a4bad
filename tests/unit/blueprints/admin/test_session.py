import os
import stat
import threading
from dataclasses import replace

import pytest
from werkzeug.security import check_password_hash, generate_password_hash

from ollama_proxy.blueprints.admin import session
from ollama_proxy.blueprints.admin.session import (
    cookie_dropped,
    fingerprint,
    is_loopback,
    oidc_fingerprint,
    secret_key,
    session_is_valid,
    start_oidc_session,
    start_session,
)
from ollama_proxy.config import parse_settings


@pytest.fixture
def settings(tmp_path):
    return parse_settings({"admin": {"password_hash": "pbkdf2:sha256:1$salt$00ff",
                                     "secret_key_file": str(tmp_path / "keys" / "admin")}}, environ={}).admin


def test_a_generated_key_is_written_once_private_and_read_back(settings):
    first = secret_key(settings)
    assert len(first) == 64
    assert secret_key(settings) == first
    assert stat.S_IMODE(os.stat(settings.secret_key_file).st_mode) == 0o600
    assert os.listdir(os.path.dirname(settings.secret_key_file)) == ["admin"]  # no temporary file left


def test_a_configured_key_wins_and_no_file_is_written(settings):
    assert secret_key(replace(settings, secret_key="x" * 40)) == "x" * 40
    assert not os.path.exists(settings.secret_key_file)


def test_a_key_file_too_short_stops_the_start(settings):
    os.makedirs(os.path.dirname(settings.secret_key_file))
    with open(settings.secret_key_file, "w") as file:
        file.write("short\n")
    with pytest.raises(RuntimeError, match="no usable secret key"):
        secret_key(settings)


@pytest.mark.parametrize("change, still_valid", [
    ({}, True),
    ({"password_hash": "pbkdf2:sha256:1$salt$11ee"}, False),
    ({"username": "root"}, False),
])
def test_a_session_ends_when_the_credentials_change(settings, change, still_valid):
    session = _Session(csrf_token="old")
    start_session(session, settings)
    assert "csrf_token" not in session and session["user"] == "admin" and session.permanent
    assert session_is_valid(session, replace(settings, **change)) is still_valid


def test_an_empty_session_is_not_a_login(settings):
    assert not session_is_valid({}, settings)
    assert not session_is_valid({"login": fingerprint(settings)[:-1]}, settings)


class _Session(dict):
    permanent = False


@pytest.mark.parametrize("host, loopback", [
    ("localhost", True), ("localhost:8080", True), ("admin.localhost:8080", True), ("LOCALHOST", True),
    ("127.0.0.1", True), ("127.0.0.1:8080", True), ("127.8.9.10:80", True), ("[::1]", True), ("[::1]:8080", True),
    ("admin.lan", False), ("admin.lan:8080", False), ("192.168.1.20:80", False), ("[fe80::1]:8080", False),
    ("localhost.example.com", False), ("127.0.0.1.nip.io", False), ("", False), ("[::1", False),
])
def test_a_host_is_loopback_as_browsers_count_it(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("cookie_secure, https, host, dropped", [
    (True, False, "admin.lan:8080", True),  # the browser refuses a Secure cookie from http://admin.lan
    (True, True, "admin.lan", False),
    (True, False, "127.0.0.1:8080", False),  # localhost is a secure context
    (False, False, "admin.lan:8080", False),
])
def test_the_browser_drops_a_secure_cookie_over_http_elsewhere_than_this_machine(settings, cookie_secure, https,
                                                                                 host, dropped):
    assert cookie_dropped(replace(settings, cookie_secure=cookie_secure), https=https, host=host) is dropped


@pytest.mark.parametrize("under_gevent, off_this_thread", [(True, True), (False, False)])
def test_the_password_is_hashed_on_gevents_thread_pool_when_gevent_runs(monkeypatch, under_gevent, off_this_thread):
    threads = []

    def check(password_hash, password):
        threads.append(threading.get_ident())
        return check_password_hash(password_hash, password)

    monkeypatch.setattr(session, "check_password_hash", check)
    monkeypatch.setattr(session, "gevent_active", lambda: under_gevent)
    password_hash = generate_password_hash("right", method="pbkdf2:sha256:1000")
    assert session.password_matches(password_hash, "right") and not session.password_matches(password_hash, "wrong")
    assert len(threads) == 2
    assert all((thread != threading.get_ident()) is off_this_thread for thread in threads)


@pytest.fixture
def oidc_settings(settings):
    return replace(settings, oidc=replace(settings.oidc, issuer="https://sso.example.com/realms/acme",
                                          client_id="proxy"))


@pytest.mark.parametrize("change, still_valid", [
    ({}, True),
    ({"issuer": "https://sso.example.com/realms/other"}, False),
    ({"client_id": "another"}, False),
    ({"issuer": ""}, False),  # sign-on turned off
    ({"label": "Acme", "admin_values": ("root",)}, True),
])
def test_a_sign_on_session_ends_when_the_provider_or_client_changes(oidc_settings, change, still_valid):
    session = _Session(csrf_token="old", _state_oidc_x={"data": {}})
    start_oidc_session(session, oidc_settings.oidc, user="ann", subject="u-1", role="viewer", team=None,
                       checked=1234.5)
    assert session == {"via": "oidc", "user": "ann", "subject": "u-1", "role": "viewer", "team": None,
                       "login": oidc_fingerprint(oidc_settings.oidc), "checked": 1234.5} and session.permanent
    changed = replace(oidc_settings, oidc=replace(oidc_settings.oidc, **change))
    assert session_is_valid(session, changed) is still_valid
    assert session_is_valid(session, replace(changed, password_hash="pbkdf2:sha256:1$salt$11ee")) is still_valid


def test_a_password_session_is_no_sign_on_session_and_ends_without_a_password(oidc_settings):
    session = _Session()
    start_session(session, oidc_settings)
    assert session_is_valid(session, oidc_settings)
    assert not session_is_valid(session, replace(oidc_settings, password_hash=""))
    assert not session_is_valid({**session, "via": "oidc"}, oidc_settings)  # a fingerprint of another kind
