"""Read a Content-Type or Content-Disposition value as Go's ``mime.ParseMediaType`` reads it.

Ollama names a form's parts by it, so its quirks decide which part is ``model``:

- Parameter names are case-insensitive (``NAME=model``).
- RFC 2231: ``name*=UTF-8''mo%64el`` and the pieces ``name*0``, ``name*1*`` override a plain
  ``name``, wherever they stand; a charset other than ``utf-8`` or ``us-ascii`` makes Go drop
  the starred value and keep the plain one.
- A quoted-string unescapes ``\\`` only before a tspecial (``\\"``, ``\\\\``); before anything
  else the backslash stays.
- A duplicate parameter name, or anything it cannot read, is an error: the part then has no
  name at all.
- White space is Unicode's (``unicode.IsSpace``: NBSP and NEL too), lower case is Go's
  simple mapping (``İ`` lowers to ``i``).

Values are ``str`` holding the header's bytes (UTF-8, other bytes kept by ``surrogateescape``),
so what Go holds as bytes comes back byte for byte (``to_bytes``).
"""

from __future__ import annotations

TSPECIALS = frozenset('()<>@,;:\\"/[]?=')
# unicode.IsSpace
SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
        "\u2028\u2029\u202f\u205f\u3000"
_GO_LOWER = {"\u0130": "i", "\u212a": "k"}  # where Go's simple mapping differs from str.lower


class MediaTypeError(ValueError):
    """Go's ParseMediaType failed; the message is Go's error text."""


def to_str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def go_lower(text: str) -> str:
    """Lower ``text`` rune by rune as Go's strings.ToLower does."""
    return "".join(_GO_LOWER.get(c) or (c.lower() if len(c.lower()) == 1 else c) for c in text)


def is_token_char(c: str) -> bool:
    return " " < c < "\x7f" and c not in TSPECIALS


def consume_token(v: str) -> tuple[str, str]:
    for i, c in enumerate(v):
        if not is_token_char(c):
            return v[:i], v[i:]
    return v, ""


def consume_value(v: str) -> tuple[str, str]:
    """Consume a token or a quoted-string; return ("", v) where there is neither."""
    if not v or v[0] != '"':
        return consume_token(v)
    out = []
    i = 1
    while i < len(v):
        c = v[i]
        if c == '"':
            return "".join(out), v[i + 1:]
        # A backslash before anything but a tspecial is kept: MSIE's unescaped "C:\dir\a.wav".
        if c == "\\" and i + 1 < len(v) and v[i + 1] in TSPECIALS:
            out.append(v[i + 1])
            i += 2
            continue
        if c in "\r\n":
            return "", v
        out.append(c)
        i += 1
    return "", v


def consume_param(v: str) -> tuple[str, str, str]:
    """Consume ``; key=value``; return (key, value, rest), or ("", "", v) where there is none."""
    rest = v.lstrip(SPACE)
    if not rest.startswith(";"):
        return "", "", v
    key, rest = consume_token(rest[1:].lstrip(SPACE))
    key = go_lower(key)
    if not key:
        return "", "", v
    rest = rest.lstrip(SPACE)
    if not rest.startswith("="):
        return "", "", v
    rest = rest[1:].lstrip(SPACE)
    value, after = consume_value(rest)
    if value == "" and after == rest:
        return "", "", v
    return key, value, after


def percent_unescape(text: str) -> str | None:
    """Decode %XX escapes; None where a ``%`` has no two hex digits after it."""
    raw = to_bytes(text)
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] != 0x25:
            out.append(raw[i])
            i += 1
            continue
        digits = raw[i + 1:i + 3]
        if len(digits) < 2 or not all(d in b"0123456789abcdefABCDEF" for d in digits):
            return None
        out.append(int(digits, 16))
        i += 3
    return to_str(bytes(out))


def decode_2231(value: str) -> str | None:
    """Decode ``charset'language'percent-encoded``; None for another charset or a bad escape."""
    pieces = value.split("'", 2)
    if len(pieces) != 3 or go_lower(pieces[0]) not in ("us-ascii", "utf-8"):
        return None
    return percent_unescape(pieces[2])


def check_type(mediatype: str) -> None:
    kind, rest = consume_token(mediatype)
    if not kind:
        raise MediaTypeError("mime: no media type")
    if not rest:
        return
    if not rest.startswith("/"):
        raise MediaTypeError("mime: expected slash after first token")
    subtype, rest = consume_token(rest[1:])
    if not subtype:
        raise MediaTypeError("mime: expected token after slash")
    if rest:
        raise MediaTypeError("mime: unexpected content after media subtype")


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Return the lowered media type and its parameters, or raise MediaTypeError, as Go does."""
    base = value.split(";", 1)[0]
    mediatype = go_lower(base).strip(SPACE)
    check_type(mediatype)
    params: dict[str, str] = {}
    starred: dict[str, dict[str, str]] = {}
    rest = value[len(base):]
    while rest := rest.lstrip(SPACE):
        key, found, after = consume_param(rest)
        if not key:
            if after.strip(SPACE) == ";":
                break  # a trailing semicolon
            raise MediaTypeError("mime: invalid media parameter")
        into = starred.setdefault(key.split("*", 1)[0], {}) if "*" in key else params
        if key in into:
            raise MediaTypeError("mime: duplicate parameter name")
        into[key] = found
        rest = after
    for key, pieces in starred.items():
        stitched = _stitch(key, pieces)
        if stitched is not None:
            params[key] = stitched
    return mediatype, params


def _stitch(key: str, pieces: dict[str, str]) -> str | None:
    """Join the RFC 2231 pieces of one parameter as Go does; None where it keeps the plain one."""
    if key + "*" in pieces:
        return decode_2231(pieces[key + "*"])
    joined, n = [], 0
    while True:
        plain, encoded = f"{key}*{n}", f"{key}*{n}*"
        if plain in pieces:
            joined.append(pieces[plain])
        elif encoded in pieces:
            decoded = decode_2231(pieces[encoded]) if n == 0 else percent_unescape(pieces[encoded])
            joined.append(decoded or "")
        else:
            return "".join(joined) if n else None
        n += 1
