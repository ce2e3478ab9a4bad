"""Show the backends' health, as /health reports it."""

from __future__ import annotations

from flask import render_template

from ollama_proxy.blueprints import health
from ollama_proxy.blueprints.admin.base import bp


def health_report() -> tuple[dict, int]:
    """Return /health's report in full (the administrator holds no token, but is logged in) and its status."""
    return health.report()


@bp.get("/backends")
def backends():
    """List every backend with its state, version and latency."""
    report, status = health_report()
    return render_template("admin/backends.html", report=report, healthy=status == 200)
