"""Choose the headers that go to a third-party provider, and those of its answer that come back.

Both ways it is an allowlist, not a blocklist: a provider is outside the
house, so it hears only what it needs and says back only what a client needs.

To the provider go the backend's own headers (its key as ``Authorization:
Bearer``, ``OpenAI-Organization`` and ``OpenAI-Project`` when the backend sets
``organization`` and ``project``, its configured ``headers``) and of the
client's only ``CLIENT_HEADERS``. Not the client's ``Authorization`` or
cookies (its proxy token), not ``X-Forwarded-For`` (its address), not its own
``OpenAI-Organization``/``OpenAI-Project`` (they would bill another account of
the operator's), not the SDK's ``X-Stainless-*`` telemetry.

Back to the client, of a passed-through answer, comes ``Content-Type`` and the
provider's ``x-request-id`` as ``X-Upstream-Request-Id`` (the proxy's own
``X-Request-Id`` names the request in its logs). Not ``set-cookie``, not the
account's ``openai-organization``/``openai-project``, and not the provider's
``x-ratelimit-*``: they count the operator's account, shared by every key,
while the proxy's own ``x-ratelimit-*`` headers speak for the caller's key. A
provider's 429 becomes the proxy's own 429 with ``Retry-After``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime

#: The client's headers a provider may see (lower case).
CLIENT_HEADERS = frozenset({"accept"})

#: The provider's answer headers a client may see, under the name it sees them (lower case: sent as).
PROVIDER_HEADERS = {"content-type": "Content-Type", "x-request-id": "X-Upstream-Request-Id"}


def to_provider(client_headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return the client's headers that may go on to a provider."""
    return {name: value for name, value in client_headers if name.lower() in CLIENT_HEADERS}


def from_provider(provider_headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return the provider's answer headers that may go on to the client, renamed where needed."""
    return {PROVIDER_HEADERS[name.lower()]: value for name, value in provider_headers
            if name.lower() in PROVIDER_HEADERS}


def own_headers(api_key: str | None, organization: str | None, project: str | None,
                configured: dict[str, str]) -> dict[str, str]:
    """Return the headers the backend sends with every request (these win over the configured ones)."""
    headers = {**configured, "Content-Type": "application/json", "Accept-Encoding": "identity"}
    for name, value in (("OpenAI-Organization", organization), ("OpenAI-Project", project)):
        if value:
            headers[name] = value
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks to wait (it holds seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
