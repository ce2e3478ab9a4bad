"""Translate Ollama's model list (``/api/tags``) into OpenAI's ``/v1/models``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# Ollama writes nanoseconds and a zone ("2025-05-10T08:06:48.639712648-07:00");
# Python 3.10's fromisoformat takes neither the nine digits nor a "Z".
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?")


def to_openai_model(tags_entry: dict) -> dict:
    """Translate one /api/tags entry into an OpenAI model object."""
    name = tags_entry.get("name") or tags_entry.get("model") or ""
    return {"id": name, "object": "model", "created": epoch_seconds(tags_entry.get("modified_at")),
            "owned_by": model_owner(name)}


def to_openai_model_list(tags: dict | None) -> dict:
    """Translate an /api/tags response into an OpenAI model list."""
    models = (tags or {}).get("models") or []
    return {"object": "list", "data": [to_openai_model(entry) for entry in models]}


def model_owner(name: str) -> str:
    """Return the namespace of an Ollama model name, "library" when it has none.

    Ollama's own layer reports this as ``owned_by``: "llama3.2" is the
    library's, "user/model" and "hf.co/user/model:tag" are the user's.
    """
    path = name.split("@", 1)[0]
    if path.rfind(":") > path.rfind("/"):
        path = path[:path.rfind(":")]
    parts = path.split("/")
    return parts[-2] if len(parts) > 1 and parts[-2] else "library"


def epoch_seconds(timestamp: object) -> int:
    """Return an RFC 3339 timestamp as whole Unix seconds (0 if it cannot be read)."""
    match = _TIMESTAMP.fullmatch(timestamp) if isinstance(timestamp, str) else None
    if not match:
        return 0
    moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    return int(moment.replace(tzinfo=_zone(match.group(2))).timestamp())


def _zone(offset: str | None) -> timezone:
    if offset in (None, "Z"):
        return timezone.utc
    sign = -1 if offset[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
