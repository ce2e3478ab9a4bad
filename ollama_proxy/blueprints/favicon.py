"""Serve the proxy's icon at ``/favicon.ico``, to anyone: a browser asks for it with no token."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
ICON_MAX_AGE = 86400  # seconds: a browser asks for the icon on every page it has none cached for

bp = Blueprint("favicon", __name__)


@bp.get("/favicon.ico")
def favicon():
    """Send the icon file."""
    return send_from_directory(STATIC_DIR, "favicon.ico", max_age=ICON_MAX_AGE)
