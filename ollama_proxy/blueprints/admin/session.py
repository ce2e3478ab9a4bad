"""Sign admin sessions: the secret key, the cookie's flags, what a valid session holds, the password check.

A browser keeps a ``Secure`` cookie only from a secure context: HTTPS, or a page of this machine
(``localhost``, 127.0.0.0/8, ``::1``). ``cookie_dropped`` tells when it will not keep ours.

A password session holds the user name and a fingerprint of the credentials; a single sign-on
session (``via: oidc``) holds the person's name, subject, role and team, when the sign-in confirmed
them (``checked``, seconds since the epoch: past ``admin.oidc.recheck``, ``session_recheck.py`` takes
the provider's word again), and a fingerprint of the provider's issuer and client id. Changing what
a fingerprint covers ends every session it signs.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import tempfile
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.security import check_password_hash

from ollama_proxy.config import AdminSettings
from ollama_proxy.config.identity import OidcSettings
from ollama_proxy.greenlets import gevent_active

COOKIE_NAME = "ollama_proxy_admin"
OIDC = "oidc"  # the ``via`` of a single sign-on session
CHECKED = "checked"  # when a single sign-on session's sign-in confirmed its role, in seconds since the epoch


def secret_key(settings: AdminSettings) -> str:
    """Return the configured secret key, or the one kept in (or first written to) the key file."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.secret_key_file
    if not os.path.exists(path):
        _write_once(path, secrets.token_hex(32))
    with open(path, encoding="utf-8") as file:
        key = file.read().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable secret key (32 characters at least)")
    return key


def _write_once(path: str, key: str) -> None:
    """Create ``path`` holding ``key`` atomically: workers starting together all read one key."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".admin-key-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(key + "\n")
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)  # fails if another worker got there first: its key wins
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def password_matches(password_hash: str, password: str) -> bool:
    """Check ``password`` against its hash on a thread of gevent's pool when gevent runs the worker.

    A hash is scrypt over 32 MiB, tens of milliseconds of CPU: on the event loop it would stop
    every stream of the worker while it runs. hashlib releases the GIL while it hashes.
    """
    if gevent_active():
        import gevent
        return gevent.get_hub().threadpool.apply(check_password_hash, (password_hash, password))
    return check_password_hash(password_hash, password)


def fingerprint(settings: AdminSettings) -> str:
    """Tie a session to the current user name and password: changing either ends every session."""
    material = f"{settings.username}\0{settings.password_hash}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def oidc_fingerprint(oidc: OidcSettings) -> str:
    """Tie a single sign-on session to the provider and the client: changing either ends every such session."""
    material = f"{OIDC}\0{oidc.issuer}\0{oidc.client_id}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def start_session(session, settings: AdminSettings) -> None:
    """Replace whatever ``session`` held with a fresh login."""
    session.clear()
    session["user"] = settings.username
    session["login"] = fingerprint(settings)
    session.permanent = True


def start_oidc_session(session, oidc: OidcSettings, *, user: str, subject: str, role: str,
                       team: str | None, checked: float) -> None:
    """Replace whatever ``session`` held with a sign-in through the identity provider, which confirmed the role
    and team at ``checked`` (seconds since the epoch)."""
    session.clear()
    session.update(via=OIDC, user=user, subject=subject, role=role, team=team, login=oidc_fingerprint(oidc))
    session[CHECKED] = checked
    session.permanent = True


def session_is_valid(session, settings: AdminSettings) -> bool:
    """Tell whether ``session`` is a login under the current credentials, or the current identity provider."""
    login = str(session.get("login", ""))
    if session.get("via") == OIDC:
        return settings.oidc.enabled and hmac.compare_digest(login, oidc_fingerprint(settings.oidc))
    return bool(settings.password_hash) and hmac.compare_digest(login, fingerprint(settings))


def signed_in_with_oidc(session) -> bool:
    return session.get("via") == OIDC


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` (a Host header: a name or an address, and maybe a port) is this machine."""
    try:
        name = urlsplit("//" + host).hostname or ""
    except ValueError:  # a bracket left open
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cookie_dropped(settings: AdminSettings, *, https: bool, host: str) -> bool:
    """Tell whether the browser will refuse the session cookie: HTTPS-only, but sent over plain HTTP to ``host``."""
    return settings.cookie_secure and not https and not is_loopback(host)


def configure(app: Flask, settings: AdminSettings) -> None:
    """Set the session cookie's key, name, scope, flags and lifetime."""
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_PATH="/admin",  # the API never sees the cookie
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.session_lifetime),
        SESSION_REFRESH_EACH_REQUEST=False,  # a login lasts session_lifetime from the moment it was made
        WTF_CSRF_CHECK_DEFAULT=False,  # the API's POSTs carry tokens, not cookies: only admin forms are checked
        WTF_CSRF_TIME_LIMIT=None,  # a form is good for as long as its session
    )
