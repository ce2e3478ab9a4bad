"""Stream a model blob from the client to an Ollama server without holding it in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ollama_proxy.errors import InvalidRequest

UPLOAD_PIECE = 1024 * 1024


class BlobUpload:
    """The client's upload, read a piece at a time as urllib3 sends it on."""

    def __init__(self, stream: BinaryIO, length: int | None):
        self._stream = stream
        self._length = length

    def __len__(self) -> int:
        # A known length lets the backend send Content-Length instead of chunking.
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                piece = self._stream.read(UPLOAD_PIECE)
            except OSError:
                # Not an OSError past this point: urllib3 would blame the upstream for it.
                raise InvalidRequest("the upload was cut off: the client stopped sending") from None
            if not piece:
                return
            yield piece


def upload_body(stream: BinaryIO, length: int | None) -> Iterable[bytes]:
    """Return the body that sends the client's upload on: sized when its length is known, else chunked."""
    upload = BlobUpload(stream, length)
    # Without a known length, a plain iterator makes the backend send it chunked.
    return upload if length is not None else iter(upload)
