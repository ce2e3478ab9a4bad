"""Show the audit trail: who changed what, when, from where, newest first."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import current_app, render_template, request

from ollama_proxy.blueprints.admin.base import bp
from ollama_proxy.store import current_store

PERIODS = {"1": "the last day", "7": "the last 7 days", "30": "the last 30 days", "": "all time"}


@bp.get("/audit")
def audit():
    """List the trail's entries of a period (``days``: 1, 7, 30; none: all), newest first, at most ``limit``."""
    days = request.args.get("days", "7")
    if days not in PERIODS:
        days = "7"
    since = datetime.now(timezone.utc) - timedelta(days=int(days)) if days else None
    limit = current_app.config["SETTINGS"].admin.audit_rows
    entries = current_store().audit_trail(since, limit=limit + 1, newest_first=True)
    return render_template("admin/audit.html", entries=entries[:limit], truncated=len(entries) > limit,
                           limit=limit, days=days, periods=PERIODS)
