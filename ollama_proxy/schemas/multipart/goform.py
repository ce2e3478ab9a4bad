"""Read a request's form as Go's net/http does: ``ParseMultipartForm``, then ``FormValue``.

``ParseMultipartForm`` first reads the URL query (``url.ParseQuery``: ``&``-separated,
``+`` is a space, a ``;`` or a bad ``%`` escape fails the whole form), then the body, whose
Content-Type must be ``multipart/form-data`` with a boundary (``mime.ParseMediaType``). A part
that Go names (``parts.Part.name``) is a file when it has a filename, else a value; an unnamed
part is skipped. ``r.Form`` holds the query's values first and the body's after them, so
``FormValue("model")`` gives the query's ``model`` before the form's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ollama_proxy.schemas.multipart.mediatype import MediaTypeError, parse_media_type, percent_unescape, to_str
from ollama_proxy.schemas.multipart.parts import MultipartError, Part, read_parts


class GoFormError(ValueError):
    """ParseMultipartForm failed; the message is Go's error text."""


class NotMultipart(GoFormError):
    """The Content-Type names no multipart/form-data with a boundary."""


def query_values(raw: bytes) -> list[tuple[str, str]]:
    """Return the (key, value) pairs of a URL query in order, or raise GoFormError as url.ParseQuery does."""
    pairs, error = [], None
    for item in to_str(raw).split("&"):
        if ";" in item:
            error = error or "invalid semicolon separator in query"
            continue
        if not item:
            continue
        key, _, value = item.partition("=")
        bad = _bad_escape(key) or _bad_escape(value)
        if bad:
            error = error or f'invalid URL escape "{bad}"'
            continue
        pairs.append((percent_unescape(key.replace("+", " ")), percent_unescape(value.replace("+", " "))))
    if error:
        raise GoFormError(error)
    return pairs


def _bad_escape(text: str) -> str | None:
    """Return the first ``%`` escape without two hex digits (as Go quotes it), or None."""
    at = text.find("%")
    while at >= 0:
        escape = text[at:at + 3]
        if len(escape) < 3 or any(c not in "0123456789abcdefABCDEF" for c in escape[1:]):
            return escape
        at = text.find("%", at + 3)
    return None


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """Read a request's Content-Type with mime.ParseMediaType (raising MediaTypeError)."""
    return parse_media_type(to_str((content_type or "").encode("latin-1")))


def boundary_param(content_type: str | None) -> str:
    """Return the boundary of a multipart/form-data Content-Type, or raise NotMultipart as Go does."""
    try:
        kind, params = media_type(content_type)
    except MediaTypeError:
        kind, params = "", {}
    if kind != "multipart/form-data":
        raise NotMultipart("request Content-Type isn't multipart/form-data")
    if "boundary" not in params:
        raise NotMultipart("no multipart boundary param in Content-Type")
    return params["boundary"]


@dataclass(frozen=True)
class GoForm:
    """What net/http holds once ParseMultipartForm is done: the query's pairs and the body's parts."""

    query: tuple[tuple[str, str], ...]
    parts: tuple[Part, ...]

    @property
    def values(self) -> dict[str, list[str]]:
        """Return ``r.Form``: each name's values, the query's first."""
        form: dict[str, list[str]] = {}
        for name, value in self.query:
            form.setdefault(name, []).append(value)
        for part in self.parts:
            if part.name and not part.filename:
                form.setdefault(part.name, []).append(to_str(bytes(part.content)))
        return form

    @property
    def files(self) -> dict[str, list[Part]]:
        """Return ``r.MultipartForm.File``: each name's file parts."""
        files: dict[str, list[Part]] = {}
        for part in self.parts:
            if part.name and part.filename:
                files.setdefault(part.name, []).append(part)
        return files

    def value(self, name: str) -> str:
        """Return ``r.FormValue(name)``."""
        return (self.values.get(name) or [""])[0]


def read_go_form(content_type: str | None, body: bytes, query: bytes = b"") -> GoForm:
    """Return the form Go reads from a request; raise GoFormError with Go's message where it cannot."""
    try:  # ParseForm: the Content-Type's own error first, then the query's
        media_type(content_type or "application/octet-stream")
    except MediaTypeError as exc:
        raise GoFormError(str(exc)) from None
    pairs = tuple(query_values(query))
    boundary = boundary_param(content_type)
    if not boundary:
        raise GoFormError("multipart: boundary is empty")
    try:
        parts = read_parts(body, boundary.encode("utf-8", "surrogateescape"))
    except MultipartError as exc:
        raise GoFormError(str(exc)) from None
    return GoForm(pairs, tuple(parts))
