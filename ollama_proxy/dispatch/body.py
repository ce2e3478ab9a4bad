"""The body a request sends an Ollama server: decided once, encoded once, with the load options granted (pure)."""

from __future__ import annotations

import json
from functools import lru_cache

from ollama_proxy.scheduler.decisions.options import reload_options

_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps builds an encoder each call for these


class OllamaBody:
    """An Ollama request body: the object the policy read, and the bytes that go.

    ``raw`` is the client's own encoding of ``data`` (the native API), sent untouched
    while nothing changes, so fields the proxy does not know reach Ollama byte for byte.
    ``data`` must be ``raw`` as Go reads it, which ``schemas.loading`` makes sure of: it
    refuses a field given twice, which Go would merge (``options``) where Python keeps the last.
    A translated body is encoded once, however many answers send it (n choices).
    """

    __slots__ = ("data", "_raw", "asked")

    def __init__(self, data: dict, raw: bytes | None = None) -> None:
        self.data = data
        self._raw = raw
        self.asked = reload_options(data.get("options"))  # the options that make Ollama reload, as asked

    def encoded(self) -> bytes:
        if self._raw is None:
            # ASCII escapes: a lone surrogate from a client stays valid JSON instead of failing to encode.
            self._raw = _COMPACT.encode(self.data).encode()
        return self._raw

    def with_options(self, options: dict) -> bytes:
        """The bytes to send with the reload options a grant decided (one value per model and server)."""
        if options == self.asked:
            return self.encoded()
        if self._raw is not None and "options" not in self.data:
            # Nothing to merge with: the object goes last, and a long chat is not decoded and encoded again for
            # it. No key of raw names options as Go reads keys (``data`` would hold it): Ollama reads this one alone.
            head = self._raw.rstrip()
            if head.endswith(b"}") and head[:-1].rstrip() != b"{":
                return head[:-1] + b',"options":' + _encoded_options(options) + b"}"
        return _COMPACT.encode({**self.data, "options": {**(self.data.get("options") or {}), **options}}).encode()


def _encoded_options(options: dict) -> bytes:
    try:
        return _encoded(tuple(options.items()))
    except TypeError:  # a value no key can hold (a list a request sent): encoded each time
        return _COMPACT.encode(options).encode()


@lru_cache(maxsize=256)  # a model runs with one set of options on each server: a few sets in all
def _encoded(options: tuple) -> bytes:
    return _COMPACT.encode(dict(options)).encode()
