"""Answers from an OpenAI-compatible provider, shaped like ``UpstreamResponse``.

``OllamaAnswer`` carries Ollama chunks converted from the provider's stream,
so a blueprint relays it as it would relay Ollama's own answer: NDJSON lines
when the client asked for a stream, else one object folded from the stream.
``PassthroughAnswer`` hands the provider's bytes on untouched (the OpenAI
surface over an OpenAI provider) and reads the usage from the last chunk.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator

from ollama_proxy.backends.ollama import UpstreamResponse
from ollama_proxy.errors import UpstreamError
from ollama_proxy.streaming import ndjson_line, split_lines

#: Pieces of a passthrough stream kept to find the usage in its last chunk.
_TAIL_PIECES = 8


def sse_data(pieces: Iterator[bytes]) -> Iterator[str]:
    """Yield the ``data:`` payloads of an SSE byte stream (comments and event names skipped)."""
    for line in split_lines(pieces):
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
    """A provider's answer relayed byte for byte; ``usage`` is read from its last chunk."""

    is_ndjson = False

    def __init__(self, raw: UpstreamResponse):
        super().__init__(raw)
        self.headers = raw.headers
        self.status = raw.status
        self._whole = not raw.headers.get("Content-Type", "").startswith("text/event-stream")
        self._tail: deque[bytes] = deque(maxlen=None if self._whole else _TAIL_PIECES)

    @property
    def waited(self) -> float:
        return self._raw.waited

    @property
    def busy(self) -> float:
        return self._raw.busy

    def iter_bytes(self) -> Iterator[bytes]:
        for piece in self._raw.iter_bytes():
            self._tail.append(piece)
            yield piece

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def json(self) -> dict:
        value = json.loads(self.read())
        if not isinstance(value, dict):
            raise UpstreamError("the provider sent JSON that is not an object")
        return value

    @property
    def usage(self) -> dict | None:
        """Return the usage of the answer read so far (a stream's comes last), or None."""
        data = b"".join(self._tail)
        if self._whole:
            return _usage_of(data)
        for line in reversed(data.split(b"\n")):
            if line.startswith(b"data:") and b'"usage"' in line:
                usage = _usage_of(line[5:])
                if usage is not None:
                    return usage
        return None


def _usage_of(data: bytes) -> dict | None:
    try:
        usage = json.loads(data).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None
