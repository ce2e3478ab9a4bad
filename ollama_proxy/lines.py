"""Cut byte streams into lines (NDJSON, SSE) whatever their chunks; write an NDJSON line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


class LineDecoder:
    """Hand back the lines of a byte stream as each is completed, its chunks split anywhere.

    A line ends at ``\\n`` alone, and is handed back without it: a ``\\r`` before
    it stays (JSON and the SSE fields read by the proxy ignore it, and bytes
    passed through keep it). A line split over many chunks is joined once, when
    its end comes.
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []

    def decode(self, chunk: bytes) -> list[bytes]:
        """Return the lines ``chunk`` completes, blank ones too; keep the rest for the next chunk."""
        if b"\n" not in chunk:
            if chunk:
                self._pending.append(chunk)
            return []
        lines = chunk.split(b"\n")
        if self._pending:
            self._pending.append(lines[0])
            lines[0] = b"".join(self._pending)
        rest = lines.pop()
        self._pending = [rest] if rest else []
        return lines

    def flush(self) -> list[bytes]:
        """Return the last line, if the stream ended without its ``\\n``; start afresh."""
        rest = b"".join(self._pending)
        self._pending = []
        return [rest] if rest else []


def nonblank_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield the lines of a byte stream that hold more than white space, the last one even without its end."""
    decoder = LineDecoder()
    for chunk in chunks:
        for line in decoder.decode(chunk):
            if line.strip():
                yield line
    for line in decoder.flush():
        if line.strip():
            yield line


def ndjson_line(obj) -> bytes:
    """Encode one object as an NDJSON line."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
