"""Whether this process runs greenlets: gunicorn's gevent worker has patched the socket module."""

from __future__ import annotations

import sys


def gevent_active() -> bool:
    """Say whether gevent has patched the socket module (a gevent worker is running)."""
    monkey = sys.modules.get("gevent.monkey")  # patching imports it; no import on every request
    return monkey is not None and monkey.is_module_patched("socket")
