"""A fake Ollama fast enough never to be the bottleneck: ``python -m bench.fake_upstream --port N``.

One asyncio process, raw HTTP/1.1 with keep-alive. ``POST /api/chat`` and
``/api/generate`` answer a stream of ``options.num_predict`` NDJSON chunks
(chunked transfer encoding) at ``--rate`` chunks a second, then a ``done``
chunk; with ``"stream": false`` one JSON object. ``GET /api/version`` and
``/api/tags`` answer as Ollama does, and ``/api/ps`` lists the model loaded
with a 4,096-token context as Ollama reports it: the proxy's scheduler then
sends each request that sets no ``num_ctx`` the loaded one, as it would to
Ollama. Each content chunk carries its send time in its text as
``~t<time.monotonic()>~``: every translation keeps the text, so a client on
this machine can tell how long the chunk took to reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

CREATED_AT = b"2025-01-01T00:00:00.000000Z"
DEFAULT_CHUNKS = 20
_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)
_TAGS = {"models": [{"name": "bench:latest", "model": "bench:latest", "size": 1, "digest": "0" * 64,
                     "modified_at": "2025-01-01T00:00:00Z", "details": {"family": "llama"}}]}
_PS = {"models": [{**_TAGS["models"][0], "expires_at": "2099-01-01T00:00:00Z", "size_vram": 1,
                   "context_length": 4096}]}


def http_head(status: str, content_type: bytes, length: int | None) -> bytes:
    """Return a response's status line and headers (chunked when ``length`` is None)."""
    framing = b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\n%s\r\n\r\n" % (status.encode(), content_type, framing)


def json_answer(obj: dict, status: str = "200 OK") -> bytes:
    """Return a whole JSON response."""
    body = json.dumps(obj).encode()
    return http_head(status, b"application/json; charset=utf-8", len(body)) + body


def content_line(path: bytes, model: bytes, index: int) -> bytes:
    """Return one content chunk of a stream, stamped with the time it is made."""
    text = b"~t%.6f~ w%d" % (time.monotonic(), index)
    if path == b"/api/generate":
        return b'{"model":"%s","created_at":"%s","response":"%s","done":false}\n' % (model, CREATED_AT, text)
    return (b'{"model":"%s","created_at":"%s","message":{"role":"assistant","content":"%s"},"done":false}\n'
            % (model, CREATED_AT, text))


def done_line(path: bytes, model: bytes, count: int) -> bytes:
    """Return the last chunk of a stream: no text, Ollama's counters."""
    empty = b'"response":""' if path == b"/api/generate" else b'"message":{"role":"assistant","content":""}'
    return (b'{"model":"%s","created_at":"%s",%s,"done":true,"done_reason":"stop","total_duration":1000000,'
            b'"load_duration":1000,"prompt_eval_count":12,"prompt_eval_duration":1000,"eval_count":%d,'
            b'"eval_duration":1000000}\n' % (model, CREATED_AT, empty, count))


def chunk(line: bytes) -> bytes:
    """Frame bytes as one HTTP chunk."""
    return b"%x\r\n%s\r\n" % (len(line), line)


def whole_answer(path: bytes, model: bytes) -> dict:
    """Return a non-stream answer, with a send-time stamp like a chunk's."""
    answer = json.loads(done_line(path, model, 1))
    text = f"~t{time.monotonic():.6f}~ hello"
    if path == b"/api/generate":
        answer["response"] = text
    else:
        answer["message"]["content"] = text
    return answer


class Stream:
    """Send one stream's chunks on schedule: chunk i at start + i / rate."""

    def __init__(self, conn: Connection, path: bytes, model: bytes, count: int, rate: float):
        self.conn, self.path, self.model, self.count, self.rate = conn, path, model, count, rate
        self.sent = 0
        self.start = time.monotonic()
        self.handle: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        """Send the headers with the first chunk, as Ollama does."""
        head = http_head("200 OK", b"application/x-ndjson", None)
        self.conn.transport.write(head + chunk(content_line(self.path, self.model, 0)))
        self.sent = 1
        self._schedule()

    def tick(self) -> None:
        """Send the next chunk, and the end of the stream after the last."""
        if self.conn.transport.is_closing():
            return
        self.conn.transport.write(chunk(content_line(self.path, self.model, self.sent)))
        self.sent += 1
        self._schedule()

    def _schedule(self) -> None:
        """Arm the timer for the next chunk, or end the stream after the last."""
        if self.sent < self.count:
            loop = asyncio.get_running_loop()
            self.handle = loop.call_at(self.start + self.sent / self.rate, self.tick)
            return
        self.conn.transport.write(chunk(done_line(self.path, self.model, self.count)) + b"0\r\n\r\n")
        self.conn.stream_ended()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


class Connection(asyncio.Protocol):
    """One keep-alive client connection: requests are answered one at a time, in order."""

    def __init__(self, rate: float, chunks: int):
        self.rate, self.chunks = rate, chunks
        self.buffer = b""
        self.stream: Stream | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.stream is not None:
            self.stream.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.serve_buffered()

    def stream_ended(self) -> None:
        self.stream = None
        self.serve_buffered()

    def serve_buffered(self) -> None:
        """Answer every whole request in the buffer (none while a stream runs)."""
        while self.stream is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            found = _CONTENT_LENGTH.search(head)
            size = int(found.group(1)) if found else 0
            if len(self.buffer) < end + 4 + size:
                return
            body, self.buffer = self.buffer[end + 4:end + 4 + size], self.buffer[end + 4 + size:]
            method, path = head.split(b" ", 2)[:2]
            self.answer(method, path.split(b"?")[0], body)

    def answer(self, method: bytes, path: bytes, body: bytes) -> None:
        """Answer one request."""
        if method == b"GET" and path == b"/api/version":
            self.transport.write(json_answer({"version": "0.12.0"}))
        elif method == b"GET" and path == b"/api/tags":
            self.transport.write(json_answer(_TAGS))
        elif method == b"GET" and path == b"/api/ps":
            self.transport.write(json_answer(_PS))
        elif method == b"POST" and path in (b"/api/chat", b"/api/generate"):
            self.generate(path, json.loads(body or b"{}"))
        else:
            self.transport.write(json_answer({"error": "not found"}, "404 Not Found"))

    def generate(self, path: bytes, request: dict) -> None:
        """Start a stream, or send a whole answer."""
        model = str(request.get("model", "bench")).encode()
        if request.get("stream", True) is False:
            self.transport.write(json_answer(whole_answer(path, model)))
            return
        count = int((request.get("options") or {}).get("num_predict") or self.chunks)
        self.stream = Stream(self, path, model, max(1, count), self.rate)
        self.stream.begin()


async def serve(port: int, rate: float, chunks: int) -> None:
    """Serve on 127.0.0.1:port until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(rate, chunks), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve until killed, with the rate and length the flags give."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--rate", type=float, default=20.0, help="chunks a second in each stream")
    parser.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS, help="chunks when num_predict is not set")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.rate, args.chunks))


if __name__ == "__main__":
    main()
