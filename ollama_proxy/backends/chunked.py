"""Decode HTTP/1.1 chunked framing (RFC 9112 §7.1) from pieces of a socket read split anywhere.

urllib3 reads a chunked body with a ``readline`` for every chunk's size and
another read for its data: one wait on the socket per chunk, however many
chunks arrived together. Fed whatever one ``recv`` returned, this decoder
hands back all the payload in it at once, so a busy stream costs one wake-up
(and one write to the client) per read instead of per chunk.
"""

from __future__ import annotations

# A size line longer than this is garbage, not a chunk size: the same bound as urllib3's.
MAX_LINE = 1024
_HEX_DIGITS = b"0123456789abcdefABCDEF"


class ChunkedFramingError(ValueError):
    """The body broke the chunked framing."""


class ChunkedDecoder:
    """Turn chunked-encoded bytes into the payload they carry; ``done`` once the last chunk ends.

    ``feed`` takes the bytes in arrival order and returns the payload found in
    them (b"" when a piece held only framing). Extensions and trailers are
    read and dropped, as urllib3 drops them.
    """

    def __init__(self) -> None:
        self.done = False
        self._pending = b""  # an incomplete size line, trailer line or CRLF
        self._data_left = 0  # payload bytes of the current chunk still to come
        self._crlf_due = False  # the CRLF that closes a chunk's data
        self._in_trailer = False

    def feed(self, piece: bytes) -> bytes:
        """Return the payload in ``piece``; raise ChunkedFramingError on a broken frame."""
        if not (self._pending or self._data_left or self._crlf_due or self._in_trailer):
            whole = _one_whole_chunk(piece)
            if whole is not None:
                return whole
        buffer = self._pending + piece if self._pending else piece
        self._pending = b""
        out = []
        position, end = 0, len(buffer)
        while position < end and not self.done:
            if self._data_left:
                taken = min(self._data_left, end - position)
                out.append(buffer[position:position + taken])
                position += taken
                self._data_left -= taken
            elif self._crlf_due:
                if end - position < 2:
                    break
                if buffer[position:position + 2] != b"\r\n":
                    raise ChunkedFramingError("a chunk's data is not followed by CRLF")
                position += 2
                self._crlf_due = False
            else:
                line_end = buffer.find(b"\r\n", position, position + MAX_LINE + 2)
                if line_end < 0:
                    if end - position > MAX_LINE:
                        raise ChunkedFramingError(f"a chunk size or trailer line longer than {MAX_LINE} bytes")
                    break
                self._line(buffer[position:line_end])
                position = line_end + 2
        if not self.done:
            self._pending = buffer[position:]
        return out[0] if len(out) == 1 else b"".join(out)

    def _line(self, line: bytes) -> None:
        if self._in_trailer:
            self.done = not line  # an empty line ends the trailer section, and the body
            return
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or size_text.strip(_HEX_DIGITS):
            raise ChunkedFramingError(f"not a chunk size: {line[:40]!r}")
        size = int(size_text, 16)
        if size:
            self._data_left, self._crlf_due = size, True
        else:
            self._in_trailer = True


def _one_whole_chunk(piece: bytes) -> bytes | None:
    """Return the data of ``piece`` if it is exactly one whole chunk of data, else None.

    The common case of a stream (a chunk a read), decoded without the general loop.
    """
    line_end = piece.find(b"\r\n", 0, MAX_LINE + 2)
    size_text = piece[:line_end]
    if line_end <= 0 or size_text.strip(_HEX_DIGITS):
        return None  # no size line yet, an extension, or garbage: the general loop says which
    size, start = int(size_text, 16), line_end + 2
    if size == 0 or len(piece) != start + size + 2 or piece[-2:] != b"\r\n":
        return None
    return piece[start:start + size]
