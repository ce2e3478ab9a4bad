"""Name the end user a trusted front end sends a request for.

A front end that many people use through one key (Open WebUI) can say whose
request it is; that person is then the principal for fairness (a share of their
own, under the key's weight and class), and shows in the usage rows and the
access log. Only a key made with ``--trusted-frontend`` may say it: from any
other key it is ignored. Either way the body goes upstream as it came.

- Open WebUI's headers (``ENABLE_FORWARD_USER_INFO_HEADERS``), on every surface:
  ``X-OpenWebUI-User-Id``, else ``-Email``, else ``-Name``.
- OpenAI's ``user`` (chat completions, completions, embeddings, responses).
- Anthropic's ``metadata.user_id`` (messages).

The headers win over the body: the front end sets them for the person signed in,
while a body may be its own client's, passed on as written. A name is a string
(Open WebUI's pipelines put an object in ``user``: ignored); control characters,
line separators and lone surrogates are dropped, and it is cut to
``MAX_END_USER`` characters.
"""

from __future__ import annotations

import re

from flask import request

from ollama_proxy.ledger import access_record

END_USER_HEADERS = ("X-OpenWebUI-User-Id", "X-OpenWebUI-User-Email", "X-OpenWebUI-User-Name")
MAX_END_USER = 128  # the usage table's end_user column holds as many
# C0 and C1 controls, DEL, lone surrogates (no store can keep them), Unicode's line and paragraph separators.
_UNFIT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def clean(value) -> str | None:
    """Return ``value`` as an end user's name: a string without control characters, trimmed, or None."""
    if not isinstance(value, str):
        return None
    name = _UNFIT.sub("", value).strip()[:MAX_END_USER].rstrip()
    return name or None


def from_headers(headers) -> str | None:
    """Return the end user Open WebUI's headers name: the first of them that names one."""
    for header in END_USER_HEADERS:
        name = clean(headers.get(header))
        if name is not None:
            return name
    return None


def from_openai(body: dict) -> str | None:
    """Return the end user an OpenAI body names in ``user``."""
    return clean(body.get("user"))


def from_anthropic(body: dict) -> str | None:
    """Return the end user an Anthropic Messages body names in ``metadata.user_id``."""
    metadata = body.get("metadata")
    return clean(metadata.get("user_id")) if isinstance(metadata, dict) else None


def named_end_user(principal, headers, named_in_body: str | None = None) -> str | None:
    """Return the end user a request is for, if ``principal`` is a trusted front end: the headers', else the body's."""
    if principal is None or not principal.trusted_frontend:
        return None
    return from_headers(headers) or named_in_body


def note_end_user(named_in_body: str | None) -> None:
    """Put the end user the current request is for on its record, once its surface has read the body."""
    record = access_record(request.environ)
    if record is not None:
        record.end_user = named_end_user(record.caller, request.headers, named_in_body)
