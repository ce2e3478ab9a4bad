"""The admin blueprint, its paths, and the guard every admin page passes."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for

from ollama_proxy.blueprints.admin.session import session_is_valid
from ollama_proxy.errors import NotFound
from ollama_proxy.store import Actor, Missing

PREFIX = "/admin"
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
# Pages anyone may see: the login form and the files it needs.
OPEN_ENDPOINTS = {"admin.login", "admin.static"}
# Scripts and styles come from /admin/static only: an injected tag cannot run.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

# The pages in the navigation bar, in order: (endpoint, label).
NAV = [("admin.dashboard", "Dashboard"), ("admin.scheduler", "Scheduler"), ("admin.keys", "Keys"),
       ("admin.teams", "Teams"), ("admin.budgets", "Budgets"), ("admin.models", "Models"), ("admin.usage", "Usage"),
       ("admin.audit", "Audit"), ("admin.backends", "Backends")]

bp = Blueprint("admin", __name__, url_prefix=PREFIX, static_folder=str(STATIC_DIR), static_url_path="/static")


def is_admin_path(path: str) -> bool:
    """Tell whether ``path`` belongs to the admin page (its errors are HTML)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


@bp.app_context_processor
def navigation() -> dict:
    return {"admin_nav": NAV}


@bp.before_request
def guard():
    """Refuse every page while the admin page is off; send strangers to the login form."""
    settings = current_app.config["SETTINGS"].admin
    if not settings.enabled:
        return render_template("admin/off.html"), 404
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        current_app.extensions["csrf"].protect()  # every form, the login form too
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not session_is_valid(session, settings):
        session.clear()
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    return None


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
    """The admin user making this request's change, and the address it comes from, for the audit trail."""
    return Actor(str(session.get("user", "")), "admin", request.remote_addr or "-")


def change_and_return(change, missing: str, done: str, page: str):
    """Run a store ``change``, then go back to ``page`` saying ``done``; 404 naming ``missing`` if it was gone."""
    try:
        change()
    except Missing:
        raise NotFound(f"no {missing}") from None
    flash(done, "ok")
    return redirect(url_for(page))
