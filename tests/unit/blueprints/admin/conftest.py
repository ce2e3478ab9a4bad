"""An app with the admin page on, over a SQLite store, and a test client logged in to it."""

from __future__ import annotations

import re

import pytest

from ollama_proxy.app import create_app
from ollama_proxy.blueprints.admin.session import start_session
from ollama_proxy.config import parse_settings
from ollama_proxy.store import current_store
from tests.migrated import migrated_sqlite

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def admin_app(tmp_path, **sections):
    raw = {"logging": {"dir": str(tmp_path / "logs")}, "store": {"url": migrated_sqlite(tmp_path / "store.db")},
           "admin": {"password_hash": "pbkdf2:sha256:1000$salt$00ff", "secret_key": "k" * 40}}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return create_app(parse_settings(raw, environ={}))


@pytest.fixture
def app_sections():
    """Override to change the app's settings, section by section."""
    return {}


@pytest.fixture
def app(tmp_path, app_sections):
    app = admin_app(tmp_path, **app_sections)
    yield app
    with app.app_context():
        current_store().close()


@pytest.fixture
def store(app):
    with app.app_context():
        yield current_store()


@pytest.fixture
def client(app):
    client = app.test_client()
    with client.session_transaction("/admin") as session:
        start_session(session, app.config["SETTINGS"].admin)
    return client


def csrf_token(client, path: str) -> str:
    """Read the CSRF token from the form on ``path``, as a browser would send it."""
    page = client.get(path).get_data(as_text=True)
    found = CSRF_FIELD.search(page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)
