"""Show the backends' health, as /health reports it to a token holder, each provider asked for its models."""

from __future__ import annotations

from flask import render_template

from ollama_proxy.backends import health
from ollama_proxy.blueprints.admin.base import bp
from ollama_proxy.store import shown_revision


@bp.get("/backends")
def backends():
    """List every backend with its state, version, models and latency."""
    report, status = health.report(ask_providers=True)
    return render_template("admin/backends.html", report=report, healthy=status == 200,
                           store_revision=shown_revision())
