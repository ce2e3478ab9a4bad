"""Know what is secret in a provider's settings, and blank it out of what the provider says.

A provider's error text is relayed to the client, and some providers echo what
they were sent ("Incorrect API key provided: sk-..."); a failing connection's
message names the base URL. The backend's API key, its organization and
project, and the password of its base URL's userinfo are secrets whatever their
length. The user of that userinfo and the values of its configured ``headers``
(where a gateway's own key may go) are blanked from ``SHORTEST_NAMED_SECRET``
characters on: shorter ones are names and switches (``admin``, ``enable``), not
credentials, and blanking them would garble every message that uses the word.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from ollama_proxy.config import ProviderSettings

MASK = "***"
SHORTEST_NAMED_SECRET = 8


def without_userinfo(url: str) -> str:
    """Return ``url`` without the ``user:password@`` of its authority, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _userinfo(url: str) -> tuple[list[str], list[str]]:
    """Return a URL's userinfo and password, and its user apart, each as written and decoded."""
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return [], []
    info = netloc.rpartition("@")[0]
    user, _, password = info.partition(":")
    secret = [info, unquote(info), password, unquote(password)] if password else []
    return secret, [user, unquote(user)]


def secrets_of(settings: ProviderSettings) -> tuple[str, ...]:
    """Return every configured value that must not reach a client, longest first."""
    secret, named = _userinfo(settings.base_url)
    values = [settings.api_key, settings.organization, settings.project, *secret]
    values += [value for value in (*named, *settings.headers.values()) if len(value) >= SHORTEST_NAMED_SECRET]
    return tuple(sorted({value for value in values if value}, key=len, reverse=True))


def as_written(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    """Return the secrets as bytes, as they are and as JSON may write them in a string (``/`` escaped or not)."""
    forms = {form for secret in secrets
             for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/"))}
    return tuple(form.encode() for form in sorted(forms, key=len, reverse=True))


def blank(text: str, secrets: tuple[str, ...]) -> str:
    """Return ``text`` with every secret replaced by ``***`` (longest first, so none is left half-shown)."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def blank_bytes(data: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """Return ``data`` with every secret (in the forms ``as_written`` gives) replaced by ``***``."""
    for secret in secrets:
        if secret in data:
            data = data.replace(secret, MASK.encode())
    return data
