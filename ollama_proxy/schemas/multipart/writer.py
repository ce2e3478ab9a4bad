"""Write a form back out in the one shape every reader reads alike.

Each field becomes ``--boundary CRLF``, ``Content-Disposition: form-data; name="..."``
(``; filename="..."`` for a file, then its ``Content-Type`` when it had one), a blank line,
its bytes and CRLF; ``--boundary--`` CRLF closes the form. This is what Go's own
``multipart.Writer`` and the OpenAI SDKs write, so a form that came in this shape leaves
byte for byte as it came. A name or filename that is not printable ASCII goes as RFC 2231's
``name*=utf-8''...`` (every byte percent-encoded but token characters), so no header can hold
a line end. The client's boundary is kept unless it occurs in what is sent; then a fresh one
is drawn.
"""

from __future__ import annotations

import re
import secrets

from ollama_proxy.schemas.multipart.form import Field, Form
from ollama_proxy.schemas.multipart.mediatype import TSPECIALS, to_bytes

# RFC 2231 attribute-char: a token character but for *, ' and %
_ATTRIBUTE_CHARS = frozenset(c for c in range(0x21, 0x7f) if chr(c) not in TSPECIALS and chr(c) not in "*'%")


def parameter(key: str, value: str) -> bytes:
    """Return ``; key="value"``, or ``; key*=utf-8''...`` for a value that is not printable ASCII."""
    raw = to_bytes(value)
    if all(0x20 <= b < 0x7f for b in raw):
        return f'; {key}="'.encode() + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    encoded = "".join(chr(b) if b in _ATTRIBUTE_CHARS else f"%{b:02X}" for b in raw)
    return f"; {key}*=utf-8''{encoded}".encode()


def part_head(field: Field) -> bytes:
    """Return a field's header block, blank line included."""
    disposition = b"Content-Disposition: form-data" + parameter("name", field.name)
    if not field.filename:
        return disposition + b"\r\n\r\n"
    disposition += parameter("filename", field.filename)
    kind = b"\r\nContent-Type: " + to_bytes(field.content_type) if field.content_type else b""
    return disposition + kind + b"\r\n\r\n"


def _boundary_for(form: Form) -> str:
    """Return the client's boundary unless some field's bytes hold it; then a fresh one they do not."""
    boundary = form.boundary
    while True:
        delimiter = re.compile(re.escape(f"--{boundary}".encode()))
        if not any(delimiter.search(field.value) for field in form.fields):
            return boundary
        boundary = "proxy-" + secrets.token_hex(16)


def write_form(form: Form) -> tuple[str, bytes]:
    """Return the Content-Type and body that send ``form`` on."""
    boundary = _boundary_for(form)
    delimiter = f"--{boundary}\r\n".encode()
    pieces: list[bytes | memoryview] = []
    for field in form.fields:
        pieces += [delimiter, part_head(field), field.value, b"\r\n"]
    pieces.append(f"--{boundary}--\r\n".encode())
    quoted = boundary if all(c not in TSPECIALS and c != " " for c in boundary) else f'"{boundary}"'
    return f"multipart/form-data; boundary={quoted}", b"".join(pieces)
