import pytest
from flask import Flask
from werkzeug.security import generate_password_hash

from ollama_proxy.blueprints.admin.base import bp
from ollama_proxy.blueprints.admin.login import credentials_match, safe_next
from ollama_proxy.config import parse_settings


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
