"""Log the administrator in with the password, and anyone out; a client locked out by the LoginGuard is answered 429.

The login page also shows the identity provider's button when ``admin.oidc`` is on (``oidc.py``), and says
so before anything is typed when the browser will refuse the HTTPS-only session cookie (plain HTTP from
another machine): without that cookie every login fails its CSRF check.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import urlsplit

from flask import current_app, redirect, render_template, request, session, url_for
from limits.errors import StorageError

from ollama_proxy.access import ratelimit
from ollama_proxy.access.login_guard import LoginGuard
from ollama_proxy.blueprints.admin.base import bp, https_only_warning, is_admin_path, signed_in
from ollama_proxy.blueprints.admin.session import password_matches, start_session
from ollama_proxy.config import AdminSettings
from ollama_proxy.store import Actor, DatabaseError, current_store

log = logging.getLogger(__name__)
_EXTENSION = "ollama_proxy.admin_logins"
UNKNOWN_USER = "an unknown user name"


def credentials_match(settings: AdminSettings, username: str, password: str) -> bool:
    """Check both, always hashing, so the answer's timing does not tell a wrong name from a wrong password."""
    password_ok = password_matches(settings.password_hash, password)
    name_ok = hmac.compare_digest(username.encode(), settings.username.encode())
    return password_ok and name_ok


def _named(settings: AdminSettings, username: str) -> str:
    # A password typed into the name field must not reach a log or the audit trail: name only the known user.
    return settings.username if username == settings.username else UNKNOWN_USER


def _who(settings: AdminSettings, username: str) -> str:
    named = _named(settings, username)
    return named if named == UNKNOWN_USER else repr(named)


def safe_next(target: str | None) -> str:
    """Return ``target`` if it is an admin page on this site, else the dashboard."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not is_admin_path(parts.path) or target.startswith("//"):
        return url_for("admin.dashboard")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form; on a POST, check it and start a session."""
    settings = current_app.config["SETTINGS"].admin
    if request.method == "GET":
        return _login_template(settings, next=request.args.get("next", ""))
    if not settings.password_hash:
        return login_page("Signing in with a password is off here: use the identity provider.", 403)
    username = request.form.get("username", "")[:200]
    password = request.form.get("password", "")[:1000]
    guard: LoginGuard = current_app.extensions[_EXTENSION]
    client = request.remote_addr or "-"
    try:
        refusal = _refusal(guard, settings, client, username)
    except StorageError as exc:  # no counter, no login: a lockout must not fail open
        log.error("admin login refused: the failed-login counter is unavailable: %s", exc)
        return _form(username, "Logging in is not possible right now; see the error log.", 503)
    if refusal is not None:
        return refusal
    if not credentials_match(settings, username, password):
        try:
            guard.failed(client, username)
        except StorageError as exc:
            log.error("a failed admin login could not be counted: %s", exc)
        log.warning("admin login failed for %s from %s", _who(settings, username), client)
        record(Actor(_named(settings, username), "admin", client), "sign-in failed")
        return _form(username, "Wrong user name or password.", 401)
    if not record(Actor(settings.username, "admin", client), "sign-in"):
        return _form(username, "Logging in is not possible right now: the store cannot be reached.", 503)
    start_session(session, settings)
    log.info("admin login for %s from %s", _who(settings, username), client)
    return redirect(safe_next(request.form.get("next")))


def record(actor: Actor, action: str, detail: dict | None = None) -> bool:
    """Put a sign-in (or a failed one, or a sign-out) in the audit trail; say whether it is there."""
    try:
        current_store().record_event(actor, action, actor.name, detail)
    except DatabaseError as exc:
        log.error("the audit trail could not record %s for %s: %s", action, actor.name, exc.reason)
        return False
    return True


def _refusal(guard: LoginGuard, settings: AdminSettings, client: str, username: str):
    """Return the 429 page if this name is locked for this address or the address is over its bound."""
    if guard.locked(client, username):
        wait = guard.retry_after(client, username)
        log.warning("admin login locked for %s from %s", _who(settings, username), client)
        return _form(username, f"Too many failed attempts. Try again in {wait} seconds.", 429, wait)
    if not guard.attempt(client):
        wait = guard.retry_after(client)
        log.warning("admin login refused from %s: more than admin.login_address_attempts", client)
        return _form(username, f"Too many login attempts from this address. Try again in {wait} seconds.", 429, wait)
    return None


def _form(username: str, error: str, status: int, retry_after: int | None = None):
    page, status = login_page(error, status, username)
    return page, status, {"Retry-After": str(retry_after)} if retry_after is not None else {}


def login_page(error: str, status: int, username: str = ""):
    """The login page again, saying ``error``, answered with ``status``."""
    settings = current_app.config["SETTINGS"].admin
    return _login_template(settings, next=request.form.get("next", ""), username=username, error=error), status


def _login_template(settings: AdminSettings, **context) -> str:
    return render_template("admin/login.html", oidc=settings.oidc, password=bool(settings.password_hash),
                           warning=https_only_warning(settings), **context)


@bp.post("/logout")
def logout():
    """End the session."""
    if session.get("user"):
        record(signed_in(), "sign-out")
    session.clear()
    return redirect(url_for("admin.login"))


def init_app(app) -> None:
    """Count failed logins where the rate limiter keeps its counters (run after ``ratelimit.init_app``)."""
    storage = app.extensions[ratelimit.EXTENSION].storage
    app.extensions[_EXTENSION] = LoginGuard(app.config["SETTINGS"].admin, storage)
