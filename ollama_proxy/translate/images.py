"""Turn image references from any surface into what Ollama's ``images`` takes.

Ollama wants base64 strings. A ``data:`` URI is decoded here; an ``http(s)``
URL is kept as the URL string, to be fetched later by the guarded fetcher
(translators do no I/O). A URL can never be mistaken for base64: ``:`` is not
in the base64 alphabet.
"""

from __future__ import annotations

import base64
import binascii
import re

from ollama_proxy.errors import InvalidRequest

_DATA_URI = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)",
                       re.DOTALL)


def is_image_url(reference) -> bool:
    """Say whether an ``images`` entry is a URL still to be fetched."""
    return isinstance(reference, str) and reference.startswith(("http://", "https://"))


def url_holders(ollama_body: dict) -> list[dict]:
    """Return the messages (and the body itself, for generate) whose ``images`` still name URLs."""
    holders = [m for m in ollama_body.get("messages") or [] if isinstance(m, dict)] + [ollama_body]
    return [holder for holder in holders
            if isinstance(holder.get("images"), list) and any(map(is_image_url, holder["images"]))]


def image_from_data_uri(uri: str, param: str | None = None) -> str:
    """Return the base64 payload of a ``data:image/...;base64,...`` URI."""
    match = _DATA_URI.fullmatch(uri.strip())
    if not match:
        raise InvalidRequest("image data URI must look like data:image/<type>;base64,<data>", param=param)
    mime = (match.group("mime") or "").lower()
    if mime and not mime.startswith("image/"):
        raise InvalidRequest(f"data URI has media type {mime!r}, not an image", param=param)
    return check_base64(match.group("data"), param)


def check_base64(data: str, param: str | None = None) -> str:
    """Return ``data`` without whitespace if it is valid base64, else raise."""
    compact = "".join(data.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("image data is not valid base64", param=param) from None
    return compact


def image_reference(url: str, param: str | None = None) -> str:
    """Map an image URL from a client to an Ollama ``images`` entry."""
    if url.startswith("data:"):
        return image_from_data_uri(url, param)
    if is_image_url(url):
        return url
    raise InvalidRequest("image URL must be a data: URI or an http(s) URL", param=param)
