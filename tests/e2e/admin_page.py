"""The admin page switched on for a test proxy: its password, its configuration, its login form."""

from __future__ import annotations

import re

import requests
from werkzeug.security import generate_password_hash

from tests.e2e.conftest import base_config

PASSWORD = "correct horse battery staple"
ATTEMPTS = 3


def admin_config(upstream_url: str, tmp_path, **admin) -> dict:
    config = base_config(upstream_url)
    config["admin"] = {"password_hash": generate_password_hash(PASSWORD), "login_attempts": ATTEMPTS,
                       "secret_key_file": str(tmp_path / "admin-secret-key"),
                       "cookie_secure": False, **admin}  # plain http here
    return config


def csrf_token(session: requests.Session, url: str) -> str:
    """Read the login form's CSRF token, as a browser would; it is bound to this session."""
    page = session.get(url + "/admin/login", timeout=30).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
