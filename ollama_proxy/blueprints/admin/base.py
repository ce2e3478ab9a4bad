"""The admin blueprint, its paths, and the guard every admin page passes."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ollama_proxy.blueprints.admin.roles import LANDING, SIGN_OUT, current_role, may
from ollama_proxy.blueprints.admin.session import cookie_dropped, session_is_valid, signed_in_with_oidc
from ollama_proxy.blueprints.admin.session_recheck import recheck_session
from ollama_proxy.config import AdminSettings
from ollama_proxy.errors import Forbidden, InvalidRequest, NotFound
from ollama_proxy.identity.roles import LABELS, MEMBER, TEAM_ADMIN, VIEWER
from ollama_proxy.store import Actor, Missing

PREFIX = "/admin"
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
# Pages anyone may see: the login form, the files it needs, and the identity provider's two legs.
OPEN_ENDPOINTS = {"admin.login", "admin.static", "admin.oidc_start", "admin.oidc_callback"}
# Scripts and styles come from /admin/static only: an injected tag cannot run.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

# The pages in the navigation bar, in order: (endpoint, label).
NAV = [("admin.dashboard", "Dashboard"), ("admin.scheduler", "Scheduler"), ("admin.keys", "Keys"),
       ("admin.teams", "Teams"), ("admin.budgets", "Budgets"), ("admin.models", "Models"), ("admin.usage", "Usage"),
       ("admin.audit", "Audit"), ("admin.backends", "Backends"), ("admin.my_keys", "My keys")]
# Why a role is refused a page, as the 403 page says it.
REFUSALS = {VIEWER: "A viewer reads the admin page but changes nothing.",
            TEAM_ADMIN: "A team admin manages its own team's keys, budgets and usage, and nothing else.",
            MEMBER: "A member manages their own keys on the My keys page, and nothing else."}

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix=PREFIX, static_folder=str(STATIC_DIR), static_url_path="/static")


def is_admin_path(path: str) -> bool:
    """Tell whether ``path`` belongs to the admin page (its errors are HTML)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


@bp.app_context_processor
def navigation() -> dict:
    """The pages this session's role may open, its home page, and who is signed in as what."""
    if not session.get("login"):
        return {"admin_nav": NAV, "admin_home": "admin.login", "admin_role": "", "admin_may": lambda endpoint: False}
    role = current_role()
    shown = [(endpoint, label) for endpoint, label in NAV if may(role, endpoint, "GET")]
    if not session.get("team"):
        shown = [(endpoint, label) for endpoint, label in shown if endpoint != "admin.my_keys"]
    return {"admin_nav": shown, "admin_home": LANDING[role], "admin_role": LABELS[role],
            "admin_may": lambda endpoint: may(role, endpoint, "GET")}


@bp.before_request
def guard():
    """Refuse every page while the admin page is off; send strangers to the login form; re-check a single
    sign-on session's role at the provider when it is due."""
    settings = current_app.config["SETTINGS"].admin
    if not settings.enabled:
        return render_template("admin/off.html"), 404
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        _check_form(settings)  # every form, the login form too
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not session_is_valid(session, settings):
        session.clear()
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    if signed_in_with_oidc(session) and request.endpoint != SIGN_OUT:
        answer = recheck_session(session, settings.oidc)
        if answer is not None:
            return answer
    role = current_role()
    if not may(role, request.endpoint, request.method):
        raise Forbidden(REFUSALS.get(role, "This page is not for your role."))
    return None


def _check_form(settings: AdminSettings) -> None:
    """Check the form's CSRF token; when no session cookie came back to check it against, say why."""
    try:
        current_app.extensions["csrf"].protect()
    except CSRFError:
        if current_app.config["WTF_CSRF_FIELD_NAME"] in session:
            raise  # the cookie came back: the token itself is wrong
        raise InvalidRequest(_without_cookie(settings)) from None


def _without_cookie(settings: AdminSettings) -> str:
    said = "The browser sent this form without its session cookie, so its CSRF token cannot be checked."
    warning = https_only_warning(settings)
    if warning:
        log.warning("admin form from %s refused: the HTTPS-only session cookie did not come back over %s "
                    "(admin.cookie_secure)", request.remote_addr or "-", request.host_url.rstrip("/"))
        return f"{said} {warning}"
    return (f"{said} Perhaps cookies for this site are blocked, or the session ended: allow cookies for "
            f"{request.host} and load the page again.")


def https_only_warning(settings: AdminSettings) -> str | None:
    """Say why signing in cannot work here, if the browser will refuse the HTTPS-only session cookie."""
    if not cookie_dropped(settings, https=request.is_secure, host=request.host):
        return None
    return ("The session cookie is sent over HTTPS only, so signing in cannot work over "
            f"{request.host_url.rstrip('/')}. Use HTTPS (nginx with a certificate), or, on a trusted LAN, set "
            "admin.cookie_secure: false (OLLAMA_PROXY_ADMIN_COOKIE_SECURE=false), knowing that the cookie and "
            "the password then cross the network readable.")


@bp.after_request
def harden(response):
    """Keep admin pages out of caches and frames; let them load only their own files."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def signed_in() -> Actor:
    """The person making this request's change, and the address it comes from, for the audit trail."""
    kind = "oidc" if signed_in_with_oidc(session) else "admin"
    return Actor(str(session.get("user", "")), kind, request.remote_addr or "-")


def landing(role: str, wanted: str | None) -> str:
    """Where to go once signed in: the admin page ``wanted``, if this role may open it, else the role's home."""
    endpoint = _endpoint_of(wanted) if wanted else None
    return wanted if endpoint and may(role, endpoint, "GET") else url_for(LANDING[role])


def _endpoint_of(target: str) -> str | None:
    """The admin view a same-site link opens, or None for another site or no view at all."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//") or not is_admin_path(parts.path):
        return None
    try:
        endpoint, _ = current_app.url_map.bind("localhost").match(parts.path, "GET")
    except HTTPException:
        return None
    return endpoint


def change_and_return(change, missing: str, done: str, page: str):
    """Run a store ``change``, then go back to ``page`` saying ``done``; 404 naming ``missing`` if it was gone."""
    try:
        change()
    except Missing:
        raise NotFound(f"no {missing}") from None
    flash(done, "ok")
    return redirect(url_for(page))
