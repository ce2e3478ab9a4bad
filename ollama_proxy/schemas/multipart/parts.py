"""Split a multipart body into parts as Go's ``mime/multipart`` Reader and ``net/textproto`` do.

What Go (1.19 and later) does, and so what this does:

- Lines before the first delimiter line (a preamble) are skipped; the first delimiter line
  ending in a bare LF makes every later delimiter LF-only (``\\n--boundary``). A delimiter line
  may carry spaces and tabs (transport padding) before its line end.
- A part's headers end at an empty line (CRLF or LF). A line that opens with a space or a tab
  continues the one before (folding): they are joined by one space. A field name is
  canonicalised (``CONTENT-DISPOSITION`` is ``Content-Disposition``) unless it holds a byte no
  field name may hold, a space included: then it is kept as sent and matches nothing. For a
  field given twice the first value counts.
- A part's content runs to the next ``CRLF--boundary`` followed by white space, a line end,
  ``--`` or the end of the body; an empty part may run straight into ``--boundary``.
- ``Content-Transfer-Encoding: quoted-printable`` is decoded by Go (here only noted).
- The body may end inside a part's headers (Go reads the form as ending before that part);
  anywhere else a missing closing delimiter, a stray line between parts, or a line over 4096
  bytes outside a part is an error, and so are more than 1000 parts.

Errors carry Go's own messages. Names and values are ``str`` (see ``mediatype``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ollama_proxy.schemas.multipart.mediatype import MediaTypeError, parse_media_type, to_str

MAX_LINE = 4096  # bufio's buffer: a longer line outside a part is an error
MAX_PARTS = 1000
# A header field name is an RFC 7230 token.
FIELD_NAME_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class MultipartError(ValueError):
    """Go's multipart reader failed; the message is its error text."""


def canonical_key(key: bytes) -> str:
    """Return a header field name as textproto keeps it (canonical case, or as sent if not a token)."""
    if not key or any(b not in FIELD_NAME_BYTES for b in key):
        return to_str(key)
    words = key.decode("ascii").split("-")
    return "-".join(word[:1].upper() + word[1:].lower() for word in words)


@dataclass(frozen=True)
class Part:
    """One part: its header fields in order (keys as textproto keeps them) and its content."""

    headers: tuple[tuple[str, str], ...]
    content: memoryview
    quoted_printable: bool = False  # Go decodes the content (and drops the header)

    def header(self, key: str) -> str:
        """Return the first value of a header field, or "" (textproto's Header.Get)."""
        wanted = canonical_key(key.encode())
        return next((value for name, value in self.headers if name == wanted), "")

    def disposition(self) -> tuple[str, dict[str, str]]:
        """Return Content-Disposition's type and parameters; raise MediaTypeError where Go cannot read it."""
        return parse_media_type(self.header("Content-Disposition"))

    @property
    def name(self) -> str:
        """Return the field name Go gives the part (FormName), "" for none."""
        try:
            kind, params = self.disposition()
        except MediaTypeError:
            return ""
        return params.get("name", "") if kind == "form-data" else ""

    @property
    def filename(self) -> str:
        """Return the filename parameter as sent ("" for none): with one, Go files the part as a file."""
        try:
            return self.disposition()[1].get("filename", "")
        except MediaTypeError:
            return ""


class _Reader:
    def __init__(self, body: bytes, boundary: bytes):
        self.body, self.at = body, 0
        self.nl = b"\r\n"
        self.dash = b"--" + boundary
        self.parts: list[Part] = []

    def line(self) -> bytes | None:
        """Read one line outside a part, line end included; None at the end of the body (nothing left)."""
        end = self.body.find(b"\n", self.at, self.at + MAX_LINE)
        if end < 0 and len(self.body) - self.at > MAX_LINE:
            raise MultipartError("multipart: NextPart: bufio: buffer full")
        end = len(self.body) if end < 0 else end + 1
        line, self.at = self.body[self.at:end], end
        return line

    def is_final(self, line: bytes) -> bool:
        if not line.startswith(self.dash + b"--"):
            return False
        rest = line[len(self.dash) + 2:].lstrip(b" \t")
        return rest in (b"", self.nl)

    def is_delimiter(self, line: bytes) -> bool:
        if not line.startswith(self.dash):
            return False
        rest = line[len(self.dash):].lstrip(b" \t")
        if not self.parts and rest == b"\n":
            self.nl = b"\n"
        return rest == self.nl

    def next_part(self) -> bool:
        """Read up to and through the next part; False at the form's end."""
        expect_part = False
        while True:
            line = self.line()
            ends = not line.endswith(b"\n")  # the body ends in this line
            if ends and self.is_final(line):
                return False
            if ends:
                raise MultipartError("multipart: NextPart: EOF")
            if self.is_delimiter(line):
                return self.read_part()
            if self.is_final(line):
                return False
            if expect_part:
                raise MultipartError(f"multipart: expecting a new Part; got line {line!r}")
            if not self.parts:
                continue  # the preamble
            if line == self.nl:
                expect_part = True
                continue
            raise MultipartError(f"multipart: unexpected line in Next(): {line!r}")

    def read_part(self) -> bool:
        headers = read_headers(self)
        if headers is None:
            return False  # the body ended inside the headers: to Go, the form ends there
        if len(self.parts) == MAX_PARTS:
            raise MultipartError("multipart: message too large")
        start = self.at
        end = self.content_end(start)
        self.at = end
        cte = next((value for key, value in headers if key == "Content-Transfer-Encoding"), "")
        quoted_printable = cte.lower() == "quoted-printable"
        if quoted_printable:
            headers = tuple((key, value) for key, value in headers if key != "Content-Transfer-Encoding")
        self.parts.append(Part(headers, memoryview(self.body)[start:end], quoted_printable))
        return True

    def content_end(self, start: int) -> int:
        """Return where a part's content ends (where the delimiter before the next part starts)."""
        at = start
        if self.body.startswith(self.dash, start):
            ends = self.after_delimiter(start + len(self.dash))
            if ends:
                return start
            at = start + len(self.dash)
        near = self.nl + self.dash
        while True:
            found = self.body.find(near, at)
            if found < 0:
                raise MultipartError("unexpected EOF")
            if self.after_delimiter(found + len(near)):
                return found
            at = found + len(near)

    def after_delimiter(self, at: int) -> bool:
        """Tell whether what follows ``--boundary`` at ``at`` makes it a delimiter (matchAfterPrefix)."""
        following = self.body[at:at + 2]
        if not following:
            return True
        return following[:1] in (b" ", b"\t", b"\r", b"\n") or following == b"--"


def _trim(line: bytes) -> bytes:
    return line.strip(b" \t")


def _header_line(reader: _Reader) -> bytes | None:
    """Read one header line without its line end (ReadLine); None at the end of the body."""
    if reader.at >= len(reader.body):
        return None
    end = reader.body.find(b"\n", reader.at)
    end = len(reader.body) if end < 0 else end
    line = reader.body[reader.at:end]
    reader.at = end + 1
    return line[:-1] if line.endswith(b"\r") and end < len(reader.body) else line


def read_headers(reader: _Reader) -> tuple[tuple[str, str], ...] | None:
    """Read a part's header block (readMIMEHeader); None where the body ends inside it."""
    if reader.body[reader.at:reader.at + 1] in (b" ", b"\t"):
        line = _header_line(reader)
        raise MultipartError(f"malformed MIME header initial line: {to_str(line or b'')}")
    headers = []
    while True:
        line = _header_line(reader)
        if line is None:
            return None
        if not line:
            return tuple(headers)
        if b":" not in line:
            raise MultipartError(f"malformed MIME header: missing colon: {line!r}")
        joined = _trim(line)
        while reader.body[reader.at:reader.at + 1] in (b" ", b"\t"):
            while reader.body[reader.at:reader.at + 1] in (b" ", b"\t"):
                reader.at += 1
            more = _header_line(reader)
            if more is None:
                break
            joined += b" " + _trim(more)
        key, _, value = joined.partition(b":")
        if key:
            headers.append((canonical_key(key), to_str(value.lstrip(b" \t"))))


def read_parts(body: bytes, boundary: bytes) -> list[Part]:
    """Return the parts of a multipart body; raise MultipartError where Go's reader fails."""
    reader = _Reader(body, boundary)
    while reader.next_part():
        pass
    return reader.parts
