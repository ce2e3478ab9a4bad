"""Serve the proxy's own OpenAPI description at ``/openapi.json``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ollama_proxy.openapi import build_spec

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi():
    """Return the OpenAPI 3 description, built once per worker from the URL map."""
    extensions = current_app.extensions
    if "ollama_proxy.openapi" not in extensions:
        extensions["ollama_proxy.openapi"] = build_spec(current_app)
    return jsonify(extensions["ollama_proxy.openapi"])
