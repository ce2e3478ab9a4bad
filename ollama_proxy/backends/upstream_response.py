"""Read an open answer from an upstream: as it arrives, bounded in its silences, closed at once.

Every ``urllib3`` failure while an answer streams in becomes a ``ProxyError``
here; ``ollama`` and ``openai_compat`` map those of sending the request.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from collections.abc import Iterator

import requests
import urllib3
from urllib3.util.response import is_response_to_head

from ollama_proxy.backends.chunked import ChunkedDecoder, ChunkedFramingError
from ollama_proxy.backends.session import reason
from ollama_proxy.backends.watchdog import IdleWatchdog
from ollama_proxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from ollama_proxy.greenlets import gevent_active
from ollama_proxy.lines import LineDecoder

READ_PIECE = 64 * 1024
AFTER_CUT_PIECES = 16  # reads of a cut answer kept for counting its last tokens: Ollama stops within a token or two


class UpstreamResponse:
    """An open answer from Ollama; iterate or read it, and always close it.

    ``waited`` is how long Ollama took to start answering; ``busy`` adds the
    time spent reading the body, for the Server-Timing header.
    """

    def __init__(self, response: requests.Response | urllib3.HTTPResponse, describe: str, waited: float,
                 idle_timeout: float, idle_setting: str = "service.stream_idle_timeout", cut_hold: float = 0.0):
        # requests' answers (providers) wrap urllib3's; the Ollama backend hands urllib3's over as they are.
        self._raw = response.raw if isinstance(response, requests.Response) else response
        self._idle_setting = idle_setting
        self._describe = describe
        self._idle_timeout = idle_timeout
        self.status = self._raw.status
        self.headers = self._raw.headers
        self.waited = self.busy = waited
        self._socket = _socket_of(self._raw)
        self._watchdog: IdleWatchdog | None = None
        self._readable = None  # the gevent watcher a stream's reads wait on
        self._cut_hold = cut_hold  # seconds a cut answer waits for the upstream to close (``service.cut_hold``)
        self._ended = False  # the body was read to its end
        self._cut = False  # told the upstream we are done (a half-close): never back to the pool
        self.after_cut = b""  # what came while it stopped, for its tokens to be counted
        self.let_go_at: float | None = None  # perf_counter time a cut answer's Ollama was seen to close its end
        self._cut_timer = None  # cuts a half-closed answer outright after cut_hold
        if self._socket is None:
            return
        if gevent_active():
            # No socket timeout: under gevent it costs a timer per read. One watchdog per
            # stream cuts a silence instead (see iter_bytes).
            self._socket.settimeout(None)
        else:
            # From here on each read waits for the next piece of a started answer.
            self._socket.settimeout(idle_timeout)

    @property
    def is_ndjson(self) -> bool:
        return self.headers.get("Content-Type", "").startswith("application/x-ndjson")

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body as it arrives: at each read, all that came, the moment Ollama sent it."""
        raw = self._raw
        try:
            if self._socket is not None and gevent_active():
                self._watchdog = IdleWatchdog(self._idle_timeout, self.abort)
            if raw.chunked and raw.supports_chunked_reads():
                yield from self._read_chunked(raw)
            else:
                while piece := self._wait_for(raw.read1, READ_PIECE, decode_content=False):
                    yield piece
                self._ended = True
            if self._cut_idle():  # a body without framing just ends when the watchdog cuts it
                raise self._idle_error()
        except (ChunkedFramingError, urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, (TimeoutError, urllib3.exceptions.ReadTimeoutError)) or self._cut_idle():
                raise self._idle_error() from None
            raise UpstreamUnavailable(f"connection to {self._describe} lost mid-answer: {reason(exc)}") from None
        finally:
            if self._watchdog is not None:
                self._watchdog.close()
            self._stop_waiting()

    def _read_chunked(self, raw: urllib3.HTTPResponse) -> Iterator[bytes]:
        """Read the socket once per wake-up and decode the chunk framing of all that came."""
        original = raw._original_response  # http.client's response: its buffer holds the body's start
        if original is None or original.fp is None:
            self._ended = True
            return  # read already
        if is_response_to_head(original):
            self._ended = True
            original.close()
            return
        decoder = ChunkedDecoder()
        read, buffered = original.fp.read1, True
        while not decoder.done:
            piece = self._wait_for(read, READ_PIECE)
            if not piece:
                raise urllib3.exceptions.ProtocolError("Response ended prematurely")
            if buffered and len(piece) < READ_PIECE and self._socket is not None:
                # The buffered reader is empty now (a short read1 returned all it held, or read the socket
                # once). Later reads go to the socket itself: a buffered read allocates its whole piece
                # before it waits, so every silent stream would hold READ_PIECE bytes, and a plain recv
                # skips two layers of Python per chunk.
                read, buffered = self._socket_reader(), False
            payload = decoder.feed(piece)
            if payload:
                yield payload
        self._stop_waiting()  # before the connection goes to another request
        self._ended = True
        if self._cut:
            self.let_go_at = time.perf_counter()  # Ollama ended the answer it was told to stop, and closes
            self._drop_connection()  # half-closed: no request can be sent on it
            return
        # As urllib3 does at the end of a body: the connection goes back to the pool.
        original.close()
        raw.release_conn()

    def _socket_reader(self):
        """Return the function that reads the socket: under gevent, one that waits until it is readable.

        gevent's own recv tries first and waits after: a failed system call and
        an exception for nearly every chunk of a stream, which arrives long after
        the last one was read.
        """
        if self._watchdog is None:
            return self._socket.recv
        import gevent

        hub, recv = gevent.get_hub(), self._socket.recv
        self._readable = readable = hub.loop.io(self._socket.fileno(), 1)  # 1: libev's EV_READ

        def read(size: int) -> bytes:
            hub.wait(readable)
            return recv(size)

        return read

    def _stop_waiting(self) -> None:
        """Close the watcher this reader waits on (the reader's own end of a stream)."""
        readable, self._readable = self._readable, None
        if readable is not None:
            readable.close()

    def _wait_for(self, read, *args, **kwargs) -> bytes:
        watchdog = self._watchdog
        if watchdog is None:
            return read(*args, **kwargs)
        watchdog.since = time.monotonic()
        try:
            return read(*args, **kwargs)
        finally:
            watchdog.since = None

    def _cut_idle(self) -> bool:
        return self._watchdog is not None and self._watchdog.fired

    def _idle_error(self) -> UpstreamTimeout:
        return UpstreamTimeout(f"{self._describe} sent nothing for {self._idle_timeout:g}s "
                               f"mid-answer ({self._idle_setting})")

    def read(self) -> bytes:
        """Return the whole body."""
        started = time.perf_counter()
        try:
            return b"".join(self.iter_bytes())
        finally:
            self.busy += time.perf_counter() - started

    def iter_chunks(self) -> Iterator[dict]:
        """Yield each NDJSON line of a stream as a dict, as soon as it is complete."""
        # The line decoder is driven here, not through ``nonblank_lines``: one generator fewer for every chunk.
        decoder = LineDecoder()
        for piece in self.iter_bytes():
            for line in decoder.decode(piece):
                if line.strip():
                    yield json_object(line, self._describe)
        for line in decoder.flush():
            if line.strip():
                yield json_object(line, self._describe)

    def json(self) -> dict:
        """Return the whole body as a JSON object."""
        return self._decode(self.read())

    def raise_for_error(self) -> None:
        """Raise Ollama's error, with its status and message, if it answered one (and close)."""
        if self.status < 400:
            return
        with self:
            body = self.read()
        try:
            message = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            message = body.decode("utf-8", "replace").strip() or f"status {self.status}"
        code = "model_not_found" if self.status == 404 and "not found" in str(message) else None
        raise UpstreamError(str(message), status=self.status, code=code)

    def _decode(self, data: bytes) -> dict:
        return json_object(data, self._describe)

    def abort(self) -> None:
        """Cut the answer from any greenlet (the event loop's included): Ollama sees us go and stops; the reader
        sees the end when Ollama has closed, or ``cut_hold`` seconds later."""
        if self._socket is None:
            return
        if not self._cut_hold or not gevent_active():
            self._shut(socket.SHUT_RDWR)
            return
        self._half_close()
        import gevent

        if self._cut_timer is None:
            self._cut_timer = timer = gevent.get_hub().loop.timer(self._cut_hold)
            timer.ref = False  # a cut answer must not keep a stopping worker alive
            timer.start(lambda: self._shut(socket.SHUT_RDWR))

    def _half_close(self) -> None:
        # Ollama's Go server cancels a request whose client half-closed, as llama-server does: a read of the
        # connection returns EOF. What it then sends, until it closes, is read to its end (``_let_go``).
        self._cut = True
        self._shut(socket.SHUT_WR)

    def _shut(self, how: int) -> None:
        try:
            self._socket.shutdown(how)
        except OSError:
            pass  # closed already

    def _let_go(self) -> None:
        """Hold a cut answer until Ollama has closed its end (it stopped), or ``cut_hold`` seconds."""
        self._half_close()
        sock, deadline, kept = self._socket, time.monotonic() + self._cut_hold, [self.after_cut]
        try:
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                piece = sock.recv(READ_PIECE)
                if not piece:
                    self.let_go_at = time.perf_counter()
                    break
                if len(kept) < AFTER_CUT_PIECES:
                    kept.append(piece)
        except OSError:
            pass  # reset, timed out, or closed by a reader of another greenlet: it has let go or will not say
        self.after_cut = b"".join(kept)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.close()
        if not self._ended and self._socket is not None and self._cut_hold and gevent_active():
            self._let_go()
        if self._cut_timer is not None:
            self._cut_timer.close()
        readable, self._readable = self._readable, None
        if readable is None:
            self._drop_connection()
            return
        # A reader in another greenlet (a heartbeat's, one of several interleaved answers) may be waiting
        # on the socket: wake it with an error, then close the socket, as gevent closes its own sockets.
        import gevent

        error = OSError(errno.EBADF, "the answer was closed while it was being read")
        gevent.get_hub().cancel_waits_close_and_then([readable], error, self._drop_connection)

    def _drop_connection(self) -> None:
        # Closing (not releasing) drops the connection: Ollama sees the client go and
        # stops generating, instead of the pool draining the rest of the answer.
        self._raw.close()
        self._raw.release_conn()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _socket_of(raw: urllib3.HTTPResponse) -> socket.socket | None:
    """Return the socket an answer is read from.

    Taken from the response's reader, not the pooled connection: http.client
    hands the socket over to the response when the server says Connection: close.
    """
    reader = getattr(raw._fp, "fp", None)  # http.client's buffered reader over a SocketIO
    return getattr(getattr(reader, "raw", None), "_sock", None)


def json_object(data: bytes, describe: str) -> dict:
    """Return the JSON object an upstream sent, or raise UpstreamError naming the upstream."""
    try:
        value = json.loads(data)
    except ValueError:
        raise UpstreamError(f"{describe} sent something that is not JSON: {data[:80]!r}") from None
    if not isinstance(value, dict):
        raise UpstreamError(f"{describe} sent JSON that is not an object")
    return value
