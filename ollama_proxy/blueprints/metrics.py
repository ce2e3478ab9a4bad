"""Serve ``/metrics`` in Prometheus' text format (manage and metrics tokens only)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from ollama_proxy.observability.metrics import metrics

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def exposition() -> Response:
    """Return the metrics of every worker, added up."""
    return Response(metrics(current_app).exposition(), 200, {"Content-Type": CONTENT_TYPE_LATEST})
