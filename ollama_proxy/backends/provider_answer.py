"""Answers from an OpenAI-compatible provider, shaped like ``UpstreamResponse``.

``OllamaAnswer`` carries Ollama chunks converted from the provider's stream,
so a blueprint relays it as it would relay Ollama's own answer: NDJSON lines
when the client asked for a stream, else one object folded from the stream.
``PassthroughAnswer`` hands the provider's bytes on (the OpenAI surface over
an OpenAI provider), secrets blanked, and reads the usage on the way.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

from ollama_proxy.backends.provider_headers import from_provider
from ollama_proxy.backends.upstream_response import UpstreamResponse
from ollama_proxy.errors import UpstreamError
from ollama_proxy.lines import LineDecoder, ndjson_line, nonblank_lines

#: A stream line that may carry a usage object (not OpenAI's ``"usage":null`` on every chunk).
_USAGE = re.compile(rb'"usage"\s*:\s*\{')


def sse_data(pieces: Iterator[bytes]) -> Iterator[str]:
    """Yield the ``data:`` payloads of an SSE byte stream (comments and event names skipped)."""
    for line in nonblank_lines(pieces):
        if line.startswith(b"data:"):
            yield line[5:].strip().decode("utf-8", "replace")


class _Answer:
    """What every provider answer shares: closing or aborting the provider's response under it."""

    status = 200

    def __init__(self, raw: UpstreamResponse | None):
        self._raw = raw

    def raise_for_error(self) -> None:
        """Do nothing: a provider's error status was raised before this answer was made."""

    def abort(self) -> None:
        """Drop the provider's connection (from any greenlet): the reader ends."""
        if self._raw is not None:
            self._raw.abort()

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class OllamaAnswer(_Answer):
    """Ollama chunks from a provider: NDJSON when ``stream``, else one folded object."""

    def __init__(self, chunks: Iterator[dict], *, stream: bool, fold: Callable[[list[dict]], dict],
                 raw: UpstreamResponse | None = None, waited: float = 0.0):
        super().__init__(raw)
        self._chunks = chunks
        self._stream = stream
        self._fold = fold
        self.waited = self.busy = waited
        self.headers = {"Content-Type": "application/x-ndjson" if stream else "application/json; charset=utf-8"}

    @property
    def is_ndjson(self) -> bool:
        return self._stream

    def iter_chunks(self) -> Iterator[dict]:
        """Yield the Ollama objects the client gets: each chunk, or the one folded answer."""
        if self._stream:
            yield from self._chunks
        else:
            yield self._fold(list(self._chunks))

    def iter_bytes(self) -> Iterator[bytes]:
        for chunk in self.iter_chunks():
            line = ndjson_line(chunk)
            yield line if self._stream else line[:-1]  # a whole answer is one object, as Ollama writes it

    def read(self) -> bytes:
        started = time.perf_counter()
        try:
            return b"".join(self.iter_bytes())
        finally:
            self.busy += time.perf_counter() - started

    def json(self) -> dict:
        """Return the whole answer folded into one object."""
        return self._fold(list(self._chunks))


class PassthroughAnswer(_Answer):
    """A provider's answer relayed as it came, but for secrets blanked; ``usage`` is read on the way.

    A stream goes on line by line, as soon as each line is whole, and its usage
    chunk (``choices: []`` with ``usage``, last) is left out unless
    ``usage_wanted``: the provider is always asked for it, for the proxy's count.
    """

    is_ndjson = False

    def __init__(self, raw: UpstreamResponse, *, blank: Callable[[bytes], bytes] = lambda data: data,
                 usage_wanted: bool = True):
        super().__init__(raw)
        self.headers = from_provider(raw.headers.items())
        self.status = raw.status
        self._stream = raw.headers.get("Content-Type", "").startswith("text/event-stream")
        self._blank = blank
        self._usage_wanted = usage_wanted
        self.usage: dict | None = None  # the usage of the answer read so far (a stream's comes last)

    @property
    def waited(self) -> float:
        return self._raw.waited

    @property
    def busy(self) -> float:
        return self._raw.busy

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield a stream's whole lines as they come, or a whole answer in one piece."""
        if not self._stream:
            data = b"".join(self._raw.iter_bytes())
            self.usage = _usage_of(data)
            yield self._blank(data)
            return
        for lines in line_batches(self._raw.iter_bytes()):
            kept = [self._blank(line) for line in lines if self._passes(line)]
            if kept:
                yield b"".join(kept)

    def _passes(self, line: bytes) -> bool:
        """Note the usage a line carries; tell whether the line goes on to the client."""
        if not (line.startswith(b"data:") and _USAGE.search(line)):
            return True
        try:
            chunk = json.loads(line[5:])
        except ValueError:
            return True
        if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
            return True
        self.usage = chunk["usage"]
        return self._usage_wanted or chunk.get("choices") != []

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def json(self) -> dict:
        value = json.loads(self.read())
        if not isinstance(value, dict):
            raise UpstreamError("the provider sent JSON that is not an object")
        return value


def line_batches(pieces: Iterator[bytes]) -> Iterator[list[bytes]]:
    """Yield the whole lines (each with its ``\n``, blank ones too) completed by each piece; a rest last."""
    decoder = LineDecoder()
    for piece in pieces:
        lines = decoder.decode(piece)
        if lines:
            yield [line + b"\n" for line in lines]
    rest = decoder.flush()
    if rest:
        yield rest


def _usage_of(data: bytes) -> dict | None:
    try:
        usage = json.loads(data).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None
