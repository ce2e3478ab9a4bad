"""Carry a new key's secret from the create form's POST to the page it redirects to, shown there once.

The session cookie is signed, not encrypted: whoever sees it (a proxy's log, a browser extension,
a shared machine) can read it. So the store keeps the secret, sealed with a one-time pad, under a
random handle for ``admin.secret_shown_within`` seconds, and the session holds the handle and the
pad: neither alone tells the secret, and the database keeps nothing it could be read from later. The
page that shows it takes the row, deleted as it is read, so a reload on whichever worker shows it no
more.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta, timezone

from ollama_proxy.store import Store

# The session's hold on a new key's secret: the key's name, its handle in the store, and the pad that opens it.
CREATED = "created_key"


def seal(secret: str) -> tuple[bytes, bytes]:
    """Return ``secret`` sealed with a random one-time pad, and the pad."""
    plain = secret.encode()
    pad = secrets.token_bytes(len(plain))
    return _xor(plain, pad), pad


def unseal(sealed: bytes, pad: bytes) -> str:
    """Return the secret ``sealed`` with ``pad``."""
    return _xor(sealed, pad).decode()


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


def hold_secret(session, store: Store, name: str, secret: str, within: float) -> None:
    """Keep the key ``name``'s ``secret`` for the next created-key page of ``session``, ``within`` seconds."""
    sealed, pad = seal(secret)
    handle = secrets.token_urlsafe(32)
    store.hold_shown_secret(handle, name, sealed, until=datetime.now(timezone.utc) + timedelta(seconds=within))
    session[CREATED] = {"name": name, "handle": handle, "pad": base64.urlsafe_b64encode(pad).decode()}


def take_secret(session, store: Store, name: str) -> str | None:
    """Remove the secret ``session`` holds for the key ``name``; return it if not gone by.

    Another key's page leaves a held secret alone: it is still to be shown on its own key's page.
    """
    held = session.get(CREATED)
    if isinstance(held, dict) and held.get("name", name) != name:
        return None
    session.pop(CREATED, None)
    if not isinstance(held, dict) or not isinstance(held.get("handle"), str):
        return None  # none held, or held the way an older version did
    sealed = store.take_shown_secret(held["handle"], name)
    return None if sealed is None else unseal(sealed, base64.urlsafe_b64decode(held["pad"]))
