"""Show the backends' health, as /health reports it."""

from __future__ import annotations

from flask import current_app, render_template

from ollama_proxy.blueprints.admin.base import bp


def health_report() -> tuple[dict, int]:
    """Run the /health view in this request and return its JSON body and status."""
    answer = current_app.view_functions["health.health"]()
    response = current_app.make_response(answer)
    return response.get_json(), response.status_code


@bp.get("/backends")
def backends():
    """List every backend with its state, version and latency."""
    report, status = health_report()
    return render_template("admin/backends.html", report=report, healthy=status == 200)
