"""Log the administrator in and out; lock a client out after too many failed attempts."""

from __future__ import annotations

import hmac
import logging
import time
from urllib.parse import urlsplit

from flask import current_app, redirect, render_template, request, session, url_for
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from werkzeug.security import check_password_hash

from ollama_proxy import ratelimit
from ollama_proxy.blueprints.admin.base import bp, is_admin_path
from ollama_proxy.blueprints.admin.session import start_session
from ollama_proxy.config import AdminSettings

log = logging.getLogger(__name__)
_EXTENSION = "ollama_proxy.admin_logins"


class LoginGuard:
    """Count failed logins per client address and user name, in the rate limiter's shared storage.

    The window starts at the first failure and lasts ``admin.login_window`` seconds; every
    worker (and, with Redis, every instance) sees the same count.
    """

    def __init__(self, settings: AdminSettings, storage: Storage):
        self._limit = RateLimitItemPerSecond(settings.login_attempts, settings.login_window)
        self._limiter = FixedWindowRateLimiter(storage)

    def locked(self, client: str, username: str) -> bool:
        return not self._limiter.test(self._limit, "admin-login", client, username)

    def retry_after(self, client: str, username: str) -> int:
        stats = self._limiter.get_window_stats(self._limit, "admin-login", client, username)
        return max(1, round(stats.reset_time - time.time()))

    def failed(self, client: str, username: str) -> None:
        self._limiter.hit(self._limit, "admin-login", client, username)


def credentials_match(settings: AdminSettings, username: str, password: str) -> bool:
    """Check both, always hashing, so the answer's timing does not tell a wrong name from a wrong password."""
    password_ok = check_password_hash(settings.password_hash, password)
    name_ok = hmac.compare_digest(username.encode(), settings.username.encode())
    return password_ok and name_ok


def _who(settings: AdminSettings, username: str) -> str:
    # A password typed into the name field must not reach the log: name only the known user.
    return repr(settings.username) if username == settings.username else "an unknown user name"


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
        return render_template("admin/login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "")[:200]
    password = request.form.get("password", "")[:1000]
    guard: LoginGuard = current_app.extensions[_EXTENSION]
    client = request.remote_addr or "-"
    try:
        locked = guard.locked(client, username)
    except StorageError as exc:  # no counter, no login: a lockout must not fail open
        log.error("admin login refused: the failed-login counter is unavailable: %s", exc)
        return render_template("admin/login.html", next=request.form.get("next", ""), username=username,
                               error="Logging in is not possible right now; see the error log."), 503
    if locked:
        wait = guard.retry_after(client, username)
        log.warning("admin login locked for %s from %s", _who(settings, username), client)
        page = render_template("admin/login.html", next=request.form.get("next", ""), username=username,
                               error=f"Too many failed attempts. Try again in {wait} seconds.")
        return page, 429, {"Retry-After": str(wait)}
    if not credentials_match(settings, username, password):
        try:
            guard.failed(client, username)
        except StorageError as exc:
            log.error("a failed admin login could not be counted: %s", exc)
        log.warning("admin login failed for %s from %s", _who(settings, username), client)
        page = render_template("admin/login.html", next=request.form.get("next", ""), username=username,
                               error="Wrong user name or password.")
        return page, 401
    start_session(session, settings)
    log.info("admin login for %s from %s", _who(settings, username), client)
    return redirect(safe_next(request.form.get("next")))


@bp.post("/logout")
def logout():
    """End the session."""
    session.clear()
    return redirect(url_for("admin.login"))


def init_app(app) -> None:
    """Count failed logins where the rate limiter keeps its counters (run after ``ratelimit.init_app``)."""
    storage = app.extensions[ratelimit.EXTENSION].storage
    app.extensions[_EXTENSION] = LoginGuard(app.config["SETTINGS"].admin, storage)
