import html
import re

import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from ollama_proxy.blueprints.admin.base import bp
from ollama_proxy.blueprints.admin.login import credentials_match, safe_next
from ollama_proxy.config import parse_settings
from tests.unit.blueprints.admin.conftest import csrf_token


def admin_settings(**admin):
    return parse_settings({"admin": admin}, environ={}).admin


@pytest.mark.parametrize("target, expected", [
    ("/admin/keys", "/admin/keys"),
    ("/admin/usage?key=a", "/admin/usage?key=a"),
    ("/admin", "/admin"),
    ("", "/admin"),
    (None, "/admin"),
    ("/api/tags", "/admin"),
    ("/administrator", "/admin"),
    ("//evil.example/admin", "/admin"),
    ("https://evil.example/admin", "/admin"),
    ("javascript:alert(1)", "/admin"),
])
def test_safe_next_stays_on_the_admin_page(target, expected):
    app = Flask(__name__)
    app.register_blueprint(bp)
    with app.test_request_context():
        assert safe_next(target) == expected


@pytest.mark.parametrize("username, password, expected", [
    ("admin", "right password", True),
    ("admin", "wrong password", False),
    ("Admin", "right password", False),
    ("", "", False),
])
def test_credentials_match(username, password, expected):
    settings = admin_settings(password_hash=generate_password_hash("right password", method="pbkdf2:sha256:1000"))
    assert credentials_match(settings, username, password) is expected


HTTPS_ONLY = "The session cookie is sent over HTTPS only, so signing in cannot work over http://admin.lan:8080."
NO_COOKIE = "The browser sent this form without its session cookie"


def login_page_warning(app, base_url: str, headers: dict | None = None) -> str:
    answer = app.test_client().get("/admin/login", base_url=base_url, headers=headers or {})
    assert answer.status_code == 200
    found = re.search(r'<p class="flash warn"[^>]*>(.*?)</p>', answer.get_data(as_text=True), re.S)
    return html.unescape(found.group(1)) if found else ""


def test_the_login_page_says_why_signing_in_cannot_work_over_plain_http(app):
    warning = login_page_warning(app, "http://admin.lan:8080")
    assert warning.startswith(HTTPS_ONLY)
    assert "HTTPS (nginx with a certificate)" in warning
    assert "admin.cookie_secure: false (OLLAMA_PROXY_ADMIN_COOKIE_SECURE=false)" in warning
    assert "the cookie and the password then cross the network readable" in warning


@pytest.mark.parametrize("base_url", ["https://admin.lan", "http://127.0.0.1:8080", "http://localhost:8080",
                                      "http://[::1]:8080"])
def test_the_login_page_warns_of_nothing_over_https_or_on_this_machine(app, base_url):
    assert login_page_warning(app, base_url) == ""


@pytest.mark.parametrize("app_sections", [{"admin": {"cookie_secure": False}}])
def test_the_login_page_warns_of_nothing_when_the_cookie_may_cross_plain_http(app):
    assert login_page_warning(app, "http://admin.lan:8080") == ""


@pytest.mark.parametrize("app_sections", [{"service": {"trusted_proxies": 1}}])
@pytest.mark.parametrize("proto, warned", [("http", True), ("https", False)])
def test_the_login_page_reads_the_scheme_and_host_nginx_saw(app, proto, warned):
    # gunicorn hears nginx on 127.0.0.1; what the browser used is in the forwarded headers.
    headers = {"X-Forwarded-Proto": proto, "X-Forwarded-Host": "admin.lan:8080", "X-Forwarded-For": "192.168.1.9"}
    assert login_page_warning(app, "http://127.0.0.1:8080", headers).startswith(HTTPS_ONLY) is warned


def post_login_without_a_cookie(app, base_url: str):
    answer = app.test_client().post("/admin/login", base_url=base_url,
                                    data={"username": "admin", "password": "x", "csrf_token": "a-token"})
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    return html.unescape(answer.get_data(as_text=True))


def test_a_login_whose_cookie_was_dropped_over_plain_http_says_so(app):
    page = post_login_without_a_cookie(app, "http://admin.lan:8080")
    assert NO_COOKIE in page and HTTPS_ONLY in page
    assert "OLLAMA_PROXY_ADMIN_COOKIE_SECURE=false" in page
    assert "CSRF session token is missing" not in page


@pytest.mark.parametrize("base_url", ["https://admin.lan", "http://127.0.0.1:8080"])
def test_a_login_without_its_cookie_where_the_cookie_is_kept_blames_blocked_cookies(app, base_url):
    page = post_login_without_a_cookie(app, base_url)
    assert NO_COOKIE in page and "cookies for this site are blocked" in page
    assert HTTPS_ONLY not in page and "CSRF session token is missing" not in page


def test_a_form_with_its_cookie_but_a_wrong_token_is_refused_as_before(app):
    client = app.test_client()
    csrf_token(client, "/admin/login")
    answer = client.post("/admin/login", data={"username": "admin", "password": "x", "csrf_token": "forged"})
    assert answer.status_code == 400
    assert NO_COOKIE not in answer.get_data(as_text=True)
