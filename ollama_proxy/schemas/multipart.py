"""Find one field of a multipart/form-data body.

OpenAI's audio transcriptions come as a form: the audio file and a few fields,
``model`` among them. The proxy needs the model (to check the caller may use
it, and to route it): the scanner reads the body up to the end of that field,
so what comes before it can be rewritten (an alias named) and the rest sent on.

The field's value is read as Go's ``mime/multipart`` reads it (what Ollama
uses): the bytes between the part's blank line and the CRLF before the next
delimiter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.http import parse_options_header

from ollama_proxy.errors import InvalidRequest

READ_PIECE = 64 * 1024
_DISPOSITION = re.compile(rb"(?im)^content-disposition[ \t]*:[ \t]*form-data[ \t]*(;.*)?$")
_NAME = re.compile(rb'(?i);[ \t]*name[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')


@dataclass(frozen=True)
class Span:
    """Where a field's value lies in the bytes read: ``head[start:end]``."""

    start: int
    end: int


def boundary_of(content_type: str | None) -> bytes:
    """Return the boundary a multipart/form-data Content-Type names, or refuse another body."""
    kind, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if kind != "multipart/form-data" or not boundary or len(boundary) > 70:
        raise InvalidRequest("the body must be multipart/form-data with a boundary (a form with the audio file "
                             "and the model)")
    return boundary.encode("latin-1", "replace")


def part_name(headers: bytes) -> str | None:
    """Return the form field name a part's headers give in Content-Disposition, or None."""
    disposition = _DISPOSITION.search(headers)
    if disposition is None or disposition.group(1) is None:
        return None
    name = _NAME.search(disposition.group(1))
    if name is None:
        return None
    quoted, bare = name.group(1), name.group(2)
    raw = re.sub(rb"\\(.)", rb"\1", quoted) if quoted is not None else bare
    return raw.decode("utf-8", "replace")


class FieldScanner:
    """Find the value of the field ``name`` in a multipart body fed piece by piece (pure: no I/O).

    ``span`` is set once the field is whole; ``ended`` once the closing
    delimiter was seen without it. Each byte is searched about once, however
    the pieces split the body.
    """

    def __init__(self, boundary: bytes, name: str):
        self.head = bytearray()
        self.name = name
        self.span: Span | None = None
        self.ended = False
        self._delimiter = b"--" + boundary
        self._part = -1  # where the current part's delimiter starts; -1: the first is not found yet
        self._headers: bytes | None = None  # the current part's headers, once whole
        self._value = 0  # where the current part's value starts, once its headers are whole
        self._searched = 0  # how far the search under way went

    @property
    def done(self) -> bool:
        return self.span is not None or self.ended

    def feed(self, piece: bytes) -> None:
        self.head += piece
        while not self.done and self._step():
            pass

    def _step(self) -> bool:
        """Scan one part further; tell whether a whole part was passed (there may be more)."""
        if self._part < 0:
            self._part = self._next_delimiter(0, b"")
            if self._part < 0:
                return False
        if self._headers is None:
            after = self._part + len(self._delimiter)
            if self.head[after:after + 2] == b"--":
                self.ended = True
                return False
            headers_end = self._find(b"\r\n\r\n", after)
            if headers_end < 0:
                return False
            self._headers, self._value = bytes(self.head[after:headers_end]), headers_end + 4
        at = self._value
        empty = self._is_delimiter(at)
        if empty is None:
            return False  # an empty value, or the start of one: the next bytes tell
        end = at if empty else self._next_delimiter(at, b"\r\n")  # empty: no CRLF of its own, as Go allows
        if end < 0:
            return False
        next_part = end if empty else end + 2
        if part_name(self._headers) == self.name:
            self.span = Span(at, end)
        self._part, self._headers = next_part, None
        self._searched = max(self._searched, next_part + len(self._delimiter))
        return True

    def _is_delimiter(self, at: int) -> bool | None:
        """Tell whether the bytes at ``at`` are a delimiter; None: too few yet to tell.

        As Go reads it: the boundary, then white space, a line end or ``--``.
        """
        end = at + len(self._delimiter)
        if len(self.head) < end + 1 or (self.head[end:end + 1] == b"-" and len(self.head) < end + 2):
            return None if self._delimiter.startswith(bytes(self.head[at:end])) else False
        if self.head[at:end] != self._delimiter:
            return False
        following = self.head[end:end + 2]
        return following[:1] in (b" ", b"\t", b"\r", b"\n") or following == b"--"

    def _next_delimiter(self, start: int, before: bytes) -> int:
        """Return where the next delimiter after ``before`` (a CRLF, or nothing) starts; -1 until it is fed."""
        needle = before + self._delimiter
        while True:
            found = self._find(needle, start)
            if found < 0:
                return -1
            real = self._is_delimiter(found + len(before))
            if real is None:
                self._searched = found  # look again when more has come
                return -1
            if real:
                return found
            start = found + 1

    def _find(self, needle: bytes, start: int) -> int:
        """Find ``needle`` from ``start``, skipping what this search saw before (but for a needle's length)."""
        found = self.head.find(needle, max(start, self._searched - len(needle) + 1))
        self._searched = len(self.head) if found < 0 else found + len(needle)
        return found


def read_field(read: Callable[[int], bytes], boundary: bytes, name: str) -> FieldScanner:
    """Read a body with ``read(n)`` until the field ``name`` is whole (or the body ends); return the scanner."""
    scanner = FieldScanner(boundary, name)
    while not scanner.done:
        piece = read(READ_PIECE)
        if not piece:
            break
        scanner.feed(piece)
    return scanner


def with_value(head: bytes | bytearray, span: Span, value: str) -> bytes:
    """Return the bytes read with the field at ``span`` holding ``value`` instead (an alias's model)."""
    return bytes(head[:span.start]) + value.encode() + bytes(head[span.end:])
