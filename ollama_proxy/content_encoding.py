"""Decode request bodies sent with a ``Content-Encoding`` (zstd, gzip, deflate), within the body limit.

Codex sends its requests zstd-compressed when it may, as Ollama accepts; other
clients send gzip. A WSGI middleware swaps such a body for a reader that
decodes it as it is read, a piece at a time, on every surface. Nothing is
decoded before a view reads the body, so a caller that fails authentication or
its rate limit costs no decompression, and errors reach the client in its
surface's shape through the app's error handlers:

- the decoded body is held to ``limits.max_body_bytes``, and so are the bytes as
  sent: a small body that decodes to gigabytes (a decompression bomb) is a 413
  once it passes the limit, never a worker's memory;
- a zstd frame may not ask for a window over 8 MiB (RFC 9659), so a frame
  header cannot make the worker allocate more;
- an encoding not listed here is a 415, a body that does not decode a 400.

The decoded length is not known before the end, so ``Content-Length`` goes and
the input is marked terminated: Werkzeug then reads it to its end, itself within
the request's limit. ``Content-Encoding`` goes too, so nothing after this layer
(the native API's pass-through headers) sees an encoding the body no longer has.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import zstandard
from flask import Flask

from ollama_proxy.errors import InvalidRequest, PayloadTooLarge

PIECE_BYTES = 64 * 1024
#: RFC 9659: a zstd content coding's window is at most 8 MiB, and decoders refuse larger.
ZSTD_MAX_WINDOW_BYTES = 8 * 1024 * 1024
#: Encodings applied one over another that are undone; clients apply one (each layer is a reader in a chain).
MAX_LAYERS = 3
_IDENTITY = "identity"


class _Sent(io.RawIOBase):
    """The body's bytes as sent, refused once they pass the limit."""

    def __init__(self, stream, limit: int) -> None:
        self._stream, self._limit, self._count = stream, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(min(len(buffer), PIECE_BYTES))
        self._count += len(data)
        if self._count > self._limit:
            raise PayloadTooLarge(f"the request body is larger than the limit ({self._limit} bytes)")
        buffer[:len(data)] = data
        return len(data)


class _Inflating(io.RawIOBase):
    """Deflate (the zlib format, or raw deflate as some clients send it), or gzip of any number of members."""

    def __init__(self, source: io.RawIOBase, gzip_members: bool) -> None:
        self._source, self._gzip = source, gzip_members
        self._decompressor = None  # None between gzip members
        self._pending = b""  # read from the source, not yet taken by the decompressor
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # Never ask zlib for 0 bytes: to zlib, a max_length of 0 means no limit at all.
        while buffer and not self._ended:
            if not self._pending:
                self._pending = self._source.read(PIECE_BYTES)
            if self._decompressor is None:
                if not self._pending:
                    break  # the body ends where a member does
                self._decompressor = zlib.decompressobj(self._wbits(self._pending))
            elif not self._pending:
                raise zlib.error("the body ends before its compressed data does")
            data = self._decompressor.decompress(self._pending, len(buffer))
            self._pending = self._decompressor.unconsumed_tail
            if self._decompressor.eof:
                self._pending = self._decompressor.unused_data
                self._decompressor = None
                self._ended = not self._gzip  # zlib data is one stream; gzip members may follow
            if data:
                buffer[:len(data)] = data
                return len(data)
        return 0

    def _wbits(self, start: bytes) -> int:
        if self._gzip:
            return 16 + zlib.MAX_WBITS
        zlib_header = len(start) >= 2 and start[0] & 0x0F == 8 and (start[0] << 8 | start[1]) % 31 == 0
        return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS


def _zstd(source: io.RawIOBase) -> io.RawIOBase:
    decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW_BYTES)
    return decompressor.stream_reader(source, read_size=PIECE_BYTES, read_across_frames=True)


_DECODERS: dict[str, Callable[[io.RawIOBase], io.RawIOBase]] = {
    "zstd": _zstd,
    "gzip": lambda source: _Inflating(source, gzip_members=True),
    "x-gzip": lambda source: _Inflating(source, gzip_members=True),
    "deflate": lambda source: _Inflating(source, gzip_members=False),
}
_DECODE_ERRORS = (zlib.error, zstandard.ZstdError)


class DecodedBody(io.RawIOBase):
    """A request body decoded as it is read, held to ``limit`` bytes before and after decoding."""

    def __init__(self, stream, encodings: list[str], limit: int) -> None:
        self._limit, self._count = limit, 0
        self._encodings = encodings
        self._refusal = _refusal(encodings)
        source: io.RawIOBase = _Sent(stream, limit)
        if self._refusal is None:
            for name in reversed(encodings):  # the last encoding applied is the first undone
                source = _DECODERS[name](source)
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._refusal is not None:
            raise self._refusal
        if not buffer:
            return 0
        try:
            data = self._source.read(min(len(buffer), PIECE_BYTES))
        except _DECODE_ERRORS as exc:
            raise InvalidRequest(f"the request body is not valid {' then '.join(reversed(self._encodings))} "
                                 f"data: {exc}") from None
        self._count += len(data)
        if self._count > self._limit:
            raise PayloadTooLarge(f"the request body decodes to more than the limit ({self._limit} bytes)")
        buffer[:len(data)] = data
        return len(data)


def _refusal(encodings: list[str]) -> InvalidRequest | None:
    unknown = [name for name in encodings if name not in _DECODERS]
    if unknown:
        return InvalidRequest(f"Content-Encoding {', '.join(unknown)} is not supported: send the body as it is, "
                              f"or encoded with {', '.join(_DECODERS)}", status=415)
    if len(encodings) > MAX_LAYERS:
        return InvalidRequest(f"Content-Encoding lists {len(encodings)} encodings: at most {MAX_LAYERS} are "
                              "undone", status=415)
    return None


def body_decoded(environ) -> bool:
    """Tell whether the request's body is decoded as it is read: it has one, of a length known only at its end."""
    return isinstance(environ.get("wsgi.input"), DecodedBody)


def content_encodings(header: str) -> list[str]:
    """Return the encodings a ``Content-Encoding`` value lists, in the order applied, ``identity`` left out."""
    names = [name.strip().lower() for name in header.split(",")]
    return [name for name in names if name and name != _IDENTITY]


class BodyDecoding:
    """Wrap a WSGI app: a body sent with a Content-Encoding reaches it decoded, as it is read."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    def __call__(self, environ, start_response):
        header = environ.pop("HTTP_CONTENT_ENCODING", "")
        encodings = content_encodings(header)
        if encodings:
            environ["wsgi.input"] = DecodedBody(environ["wsgi.input"], encodings, self.limit)
            environ.pop("CONTENT_LENGTH", None)
            environ["wsgi.input_terminated"] = True
        return self.app(environ, start_response)


def init_app(app: Flask) -> None:
    app.wsgi_app = BodyDecoding(app.wsgi_app, app.config["SETTINGS"].limits.max_body_bytes)
