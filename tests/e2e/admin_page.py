"""The admin page switched on for a test proxy: its password, its configuration, its login form."""

from __future__ import annotations

import re
import zlib

import requests
from itsdangerous.encoding import base64_decode
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


def form_token(session: requests.Session, url: str) -> str:
    """Read the CSRF token of the form on the page at ``url``."""
    return re.search(r'name="csrf_token" value="([^"]+)"', session.get(url, timeout=30).text).group(1)


def signed_in(url: str) -> requests.Session:
    """A client logged in with the password that opens a new connection for each request: either worker may
    answer each."""
    session = requests.Session()
    session.headers["Connection"] = "close"
    answer = session.post(url + "/admin/login", allow_redirects=False, timeout=30,
                          data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_token(session, url)})
    assert answer.status_code == 302, answer.text[:300]
    return session


def session_cookies(answer: requests.Response) -> list[str]:
    """The session cookie values ``answer`` sets."""
    headers = answer.raw.headers.getlist("Set-Cookie")
    return [header.split(";")[0].split("=", 1)[1] for header in headers if header.startswith("ollama_proxy_admin=")]


def session_payload(cookie: str) -> str:
    """Read what a Flask session cookie carries: it is signed, not encrypted, so anyone who sees it can."""
    compressed = cookie.startswith(".")  # itsdangerous marks a zlib-compressed payload so
    data = base64_decode(cookie.lstrip(".").split(".")[0])
    return (zlib.decompress(data) if compressed else data).decode()
