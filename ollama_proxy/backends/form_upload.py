"""Send a client's form on to Ollama: the part the proxy read first, then the rest as the client sends it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from ollama_proxy.backends.blob_upload import BlobUpload
from ollama_proxy.errors import ProxyError


class FormUpload:
    """The body of a forwarded form, sent once: ``head``, then the client's stream piece by piece.

    The stream can be read once only: should a pool try a second server after
    the first took part of the body, the second try fails instead of sending
    half a form.
    """

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head = head
        self._rest = BlobUpload(stream, None)
        self._started = False

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise ProxyError("the upload was cut off on its way to Ollama and cannot be sent again", status=502)
        self._started = True
        yield self._head
        yield from self._rest


class SizedFormUpload(FormUpload):
    """A form whose length is known: ``Content-Length`` goes on (adjusted for what the proxy changed in the head)."""

    def __init__(self, head: bytes, stream: BinaryIO, length: int):
        super().__init__(head, stream)
        self._length = length

    def __len__(self) -> int:
        return self._length


def form_body(head: bytes, stream: BinaryIO, length: int | None) -> FormUpload:
    """Return the body that sends the form on: sized when its length is known, else sent chunked."""
    return FormUpload(head, stream) if length is None else SizedFormUpload(head, stream, length)
