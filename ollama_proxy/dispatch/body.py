"""The body a request sends an Ollama server: decided once, encoded once, with the load options granted (pure)."""

from __future__ import annotations

import json
import secrets
from functools import lru_cache
from json.encoder import encode_basestring_ascii

from ollama_proxy.scheduler.decisions.options import reload_options

_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps builds an encoder each call for these
PIECE_CHARS = 1 << 18  # a longer string is encoded a piece at a time
PIECE_BYTES = 1 << 20  # bytes are copied this much at a time
TAIL_BYTES = 4096  # how far from a body's end its closing brace is looked for
# A body is large, its encoding work for a thread, past this many characters of text or this many values.
LARGE_CHARS = 256 * 1024
LARGE_VALUES = 5_000


class OllamaBody:
    """An Ollama request body: the object the policy read, and the bytes that go.

    ``raw`` is the client's own encoding of ``data`` (the native API), sent untouched
    while nothing changes, so fields the proxy does not know reach Ollama byte for byte.
    ``data`` must be ``raw`` as Go reads it, which ``schemas.loading`` makes sure of: it
    refuses a field given twice, which Go would merge (``options``) where Python keeps the last.
    A translated body is encoded once, however many answers send it (n choices).
    """

    __slots__ = ("data", "_raw", "asked", "_large")

    def __init__(self, data: dict, raw: bytes | None = None) -> None:
        self.data = data
        self._raw = raw
        self.asked = reload_options(data.get("options"))  # the options that make Ollama reload, as asked
        self._large: bool | None = None

    def large(self) -> bool:
        """Whether encoding this body (again) is work long enough to be felt: for a thread, off the event loop."""
        if self._large is None:
            self._large = len(self._raw) > LARGE_CHARS if self._raw is not None else _large(self.data)
        return self._large

    def encoded(self) -> bytes:
        if self._raw is None:
            self._raw = encode_json(self.data)
        return self._raw

    def with_options(self, options: dict) -> bytes:
        """The bytes to send with the reload options a grant decided (one value per model and server)."""
        if options == self.asked:
            return self.encoded()
        if self._raw is not None and "options" not in self.data:
            # Nothing to merge with: the object goes last, and a long chat is not decoded and encoded again for
            # it. No key of raw names options as Go reads keys (``data`` would hold it): Ollama reads this one alone.
            brace = _closing_brace(self._raw)
            if brace is not None:
                return _joined(self._raw, brace, b',"options":' + _encoded_options(options) + b"}")
        return encode_json({**self.data, "options": {**(self.data.get("options") or {}), **options}})


def encode_json(data) -> bytes:
    """Encode ``data`` as compact JSON with ASCII escapes; its long strings a piece at a time.

    ASCII escapes: a lone surrogate from a client stays valid JSON instead of failing to encode.
    The pieces keep each call into the C encoder short, so a thread encoding 45 MB lets the event
    loop run; the bytes are those of one call.
    """
    paths = _long_strings(data)
    if not paths:
        return _COMPACT.encode(data).encode()
    skeleton, strings = _marked(data, paths)
    text = _COMPACT.encode(skeleton)
    if any(text.count(mark) != 1 for mark in strings):  # a container two places share: marked twice
        return _COMPACT.encode(data).encode()
    out, start = [], 0
    for at, mark in sorted((text.index(mark), mark) for mark in strings):
        string = strings[mark]
        out += [text[start:at].encode(), b'"']
        out += [encode_basestring_ascii(string[i:i + PIECE_CHARS])[1:-1].encode()
                for i in range(0, len(string), PIECE_CHARS)]
        out.append(b'"')
        start = at + len(mark)
    out.append(text[start:].encode())
    return b"".join(out)


def _closing_brace(raw: bytes) -> int | None:
    """Where the brace that closes a non-empty object ``raw`` stands, found near its end (else None)."""
    tail = raw[-TAIL_BYTES:]
    stripped = tail.rstrip()
    if not stripped.endswith(b"}") or stripped[:-1].rstrip()[-1:] in (b"{", b""):
        return None  # far from the end, or an empty object: encoded again
    return len(raw) - len(tail) + len(stripped) - 1


def _joined(raw: bytes, end: int, tail: bytes) -> bytes:
    """``raw[:end] + tail``, copied a piece at a time: joining bytes lets go of the interpreter, slicing 45 MB at
    once held it (and the event loop) for a tenth of a second on a busy machine."""
    pieces = [raw[at:min(at + PIECE_BYTES, end)] for at in range(0, end, PIECE_BYTES)]
    pieces.append(tail)
    return b"".join(pieces)


def _large(data) -> bool:
    """Whether ``data`` holds more than ``LARGE_CHARS`` characters of strings or ``LARGE_VALUES`` values."""
    chars, pending = 0, [data]
    for _ in range(LARGE_VALUES):
        if not pending:
            return False
        value = pending.pop()
        if isinstance(value, str):
            chars += len(value)
            if chars > LARGE_CHARS:
                return True
        elif isinstance(value, dict):
            pending += value.keys()
            pending += value.values()
        elif isinstance(value, list):
            pending += value
    return bool(pending)


def _long_strings(data) -> list[tuple]:
    """The paths (keys and indexes from the top) of the strings in ``data`` longer than ``PIECE_CHARS``."""
    found, pending = [], [((), data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if len(value) > PIECE_CHARS and path:
                found.append(path)
        elif isinstance(value, dict):
            pending += (((*path, key), item) for key, item in value.items())
        elif isinstance(value, list):
            pending += (((*path, index), item) for index, item in enumerate(value))
    return found


def _marked(data, paths: list[tuple]) -> tuple[object, dict[str, str]]:
    """A copy of ``data`` with a mark in place of each long string (the containers on their way copied, the rest
    shared), and the string each mark stands for, by the mark as it is encoded."""
    copies: dict[int, object] = {}

    def copied(value):
        if id(value) not in copies:
            copies[id(value)] = dict(value) if isinstance(value, dict) else list(value)
        return copies[id(value)]

    top = copied(data)
    nonce = secrets.token_hex(8)  # unguessable: no client's string holds it
    strings = {}
    for n, path in enumerate(paths):
        into, original = top, data
        for key in path[:-1]:
            original = original[key]
            into[key] = copied(original)
            into = into[key]
        mark = f"\x00{nonce}:{n}"
        strings[_COMPACT.encode(mark)] = original[path[-1]]
        into[path[-1]] = mark
    return top, strings


def _encoded_options(options: dict) -> bytes:
    try:
        return _encoded(tuple(options.items()))
    except TypeError:  # a value no key can hold (a list a request sent): encoded each time
        return _COMPACT.encode(options).encode()


@lru_cache(maxsize=256)  # a model runs with one set of options on each server: a few sets in all
def _encoded(options: tuple) -> bytes:
    return _COMPACT.encode(dict(options)).encode()
