"""Read a JSON body's long strings a piece at a time: no one call holds the interpreter for long.

json's C decoder reads a string in one call that holds the interpreter lock throughout
(a 45 MB string: 40 ms, over 100 ms on a busy machine), so a thread reading one holds the
worker's event loop as long. Here each long string literal is read from the body's bytes in
pieces, at places no escape nor UTF-8 character spans, and the rest of the body as it was,
with a mark where each long string stood: each long string is made once, the whole body is
never decoded as one text. Anything unexpected (an invalid body, above all) gives None, and
the body is read whole as before, its error message and all.
"""

from __future__ import annotations

import codecs
import secrets
from collections.abc import Callable
from json.decoder import scanstring

PIECE_BYTES = 1 << 18  # a string this long (in UTF-8) is read a piece at a time
ESCAPE_BYTES = 6  # the longest escape, \uXXXX
CUT_SEARCH_BYTES = 4096  # how far past a piece's end a place to cut it is looked for
_BACKSLASH = ord("\\")


def decoded_text(raw: bytes) -> str:
    """``raw.decode("utf-8")``, a piece at a time (raising the same UnicodeDecodeError)."""
    if len(raw) <= PIECE_BYTES:
        return raw.decode("utf-8")
    decoder, view = codecs.getincrementaldecoder("utf-8")(), memoryview(raw)
    parts = [decoder.decode(view[i:i + PIECE_BYTES]) for i in range(0, len(raw), PIECE_BYTES)]
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def parsed_in_pieces(raw: bytes, parse: Callable[[str], object]) -> object | None:
    """``parse(raw.decode())`` with its long strings read in pieces; None where it would not be the same (read it
    whole). In UTF-8 a quote or a backslash is never part of another character: found in the bytes as in the text."""
    spans = _long_literals(raw)
    if not spans:
        return None
    nonce = secrets.token_hex(8)  # unguessable: no client's string is a mark
    strings, parts, at = {}, [], 0
    for n, (start, end) in enumerate(spans):
        string = _literal(raw, start, end)
        if string is None:
            return None
        strings[f"{nonce}-{n}"] = string
        parts += [raw[at:start], f'"{nonce}-{n}"'.encode()]
        at = end
    parts.append(raw[at:])
    try:
        body = parse(b"".join(parts).decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError too: where, and how, the whole text says
        return None
    return body if _put_back(body, strings) else None


def _long_literals(raw: bytes) -> list[tuple[int, int]]:
    """The string literals (start, end past the closing quote) that hold a whole aligned piece without a quote."""
    found: list[tuple[int, int]] = []
    for window in range(0, len(raw) - PIECE_BYTES, PIECE_BYTES):
        if (found and found[-1][1] > window) or raw.find(b'"', window, window + PIECE_BYTES) >= 0:
            continue
        start = raw.rfind(b'"', 0, window)
        while start > 0 and _escaped(raw, start):
            start = raw.rfind(b'"', 0, start)
        end = raw.find(b'"', window + PIECE_BYTES)
        while end > 0 and _escaped(raw, end):
            end = raw.find(b'"', end + 1)
        if start < 0 or end < 0:
            return []  # not inside a string, or an unterminated one
        found.append((start, end + 1))
    return found


def _escaped(raw: bytes, quote: int) -> bool:
    backslashes = 0
    while quote > backslashes and raw[quote - 1 - backslashes] == _BACKSLASH:
        backslashes += 1
    return backslashes % 2 == 1


def _literal(raw: bytes, start: int, end: int) -> str | None:
    """The string the literal ``raw[start:end]`` stands for, read a piece at a time; None if it is not one."""
    pieces, at, last = [], start + 1, end - 1
    while at < last:
        cut = _cut(raw, at + PIECE_BYTES, last)
        try:
            text = raw[at:cut].decode("utf-8")
            string, stop = scanstring(f'"{text}"', 1)
        except ValueError:  # UnicodeDecodeError too
            return None
        if stop != len(text) + 2:
            return None
        pieces.append(string)
        at = cut
    return "".join(pieces)


def _cut(raw: bytes, at: int, last: int) -> int:
    """A place at or after ``at`` that no escape spans (no backslash within ESCAPE_BYTES before it, nor at it),
    nor a character of UTF-8 (no continuation byte at it)."""
    limit = min(last, at + CUT_SEARCH_BYTES)
    while at < limit:
        backslash = raw.rfind(b"\\", at - ESCAPE_BYTES, at + 1)
        if backslash >= 0:
            at = backslash + ESCAPE_BYTES + 1
        elif 0x80 <= raw[at] < 0xC0:
            at += 1
        else:
            return at
    return last  # escapes everywhere: the rest in one piece


def _put_back(body: object, strings: dict[str, str]) -> bool:
    """Put each long string where its mark is; False unless each mark was a value, found once."""
    left, pending = len(strings), [body]
    while pending:
        value = pending.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if isinstance(key, str) and key in strings:
                return False
            if isinstance(item, str) and item in strings:
                value[key] = strings.pop(item)
                left -= 1
            elif isinstance(item, (dict, list)):
                pending.append(item)
    return left == 0
