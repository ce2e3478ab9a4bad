"""Read a JSON body's long strings a piece at a time: no one call holds the interpreter for long.

json's C decoder reads a string in one call that holds the interpreter lock throughout
(a 45 MB string: 40 ms, over 100 ms on a busy machine), so a thread reading one holds the
worker's event loop as long. Here each long string literal is read in pieces at places no
escape spans, the rest of the body as it was, with a mark where each long string stood;
anything unexpected (an invalid body, above all) gives None, and the body is read whole as
before, its error message and all.
"""

from __future__ import annotations

import codecs
import secrets
from collections.abc import Callable
from json.decoder import scanstring

PIECE_CHARS = 1 << 18  # a string this long is read a piece at a time
ESCAPE_CHARS = 6  # the longest escape, \uXXXX
CUT_SEARCH_CHARS = 4096  # how far past a piece's end a place to cut it is looked for


def decoded_text(raw: bytes) -> str:
    """``raw.decode("utf-8")``, a piece at a time (raising the same UnicodeDecodeError)."""
    if len(raw) <= PIECE_CHARS:
        return raw.decode("utf-8")
    decoder, view = codecs.getincrementaldecoder("utf-8")(), memoryview(raw)
    parts = [decoder.decode(view[i:i + PIECE_CHARS]) for i in range(0, len(raw), PIECE_CHARS)]
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def parsed_in_pieces(text: str, parse: Callable[[str], object]) -> object | None:
    """``parse(text)`` with its long strings read in pieces; None where it would not be the same (read it whole)."""
    spans = _long_literals(text)
    if not spans:
        return None
    nonce = secrets.token_hex(8)  # unguessable: no client's string is a mark
    strings, parts, at = {}, [], 0
    for n, (start, end) in enumerate(spans):
        string = _literal(text, start, end)
        if string is None:
            return None
        strings[f"{nonce}-{n}"] = string
        parts += [text[at:start], f'"{nonce}-{n}"']
        at = end
    parts.append(text[at:])
    try:
        body = parse("".join(parts))
    except (ValueError, RecursionError):  # where, and how, the whole text says
        return None
    return body if _put_back(body, strings) else None


def _long_literals(text: str) -> list[tuple[int, int]]:
    """The string literals (start, end past the closing quote) that hold a whole aligned piece without a quote."""
    found: list[tuple[int, int]] = []
    for window in range(0, len(text) - PIECE_CHARS, PIECE_CHARS):
        if (found and found[-1][1] > window) or text.find('"', window, window + PIECE_CHARS) >= 0:
            continue
        start = text.rfind('"', 0, window)
        while start > 0 and _escaped(text, start):
            start = text.rfind('"', 0, start)
        end = text.find('"', window + PIECE_CHARS)
        while end > 0 and _escaped(text, end):
            end = text.find('"', end + 1)
        if start < 0 or end < 0:
            return []  # not inside a string, or an unterminated one
        found.append((start, end + 1))
    return found


def _escaped(text: str, quote: int) -> bool:
    backslashes = 0
    while quote > backslashes and text[quote - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _literal(text: str, start: int, end: int) -> str | None:
    """The string the literal ``text[start:end]`` stands for, read a piece at a time; None if it is not one."""
    pieces, at, last = [], start + 1, end - 1
    while at < last:
        cut = _cut(text, at + PIECE_CHARS, last)
        try:
            string, stop = scanstring(f'"{text[at:cut]}"', 1)
        except ValueError:
            return None
        if stop != cut - at + 2:
            return None
        pieces.append(string)
        at = cut
    return "".join(pieces)


def _cut(text: str, at: int, last: int) -> int:
    """A place at or after ``at`` that no escape spans (no backslash within ESCAPE_CHARS before it, nor at it)."""
    limit = min(last, at + CUT_SEARCH_CHARS)
    while at < limit:
        backslash = text.rfind("\\", at - ESCAPE_CHARS, at + 1)
        if backslash < 0:
            return at
        at = backslash + ESCAPE_CHARS + 1
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
