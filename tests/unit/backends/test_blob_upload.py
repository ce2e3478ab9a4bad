import io

import pytest

from ollama_proxy.backends.blob_upload import UPLOAD_PIECE, BlobUpload, upload_body
from ollama_proxy.errors import InvalidRequest


def test_a_known_length_is_sent_as_content_length_in_pieces():
    data = b"x" * (UPLOAD_PIECE + 10)
    body = upload_body(io.BytesIO(data), len(data))
    assert len(body) == len(data)
    assert [len(piece) for piece in body] == [UPLOAD_PIECE, 10]


def test_an_unknown_length_is_sent_chunked():
    body = upload_body(io.BytesIO(b"abc"), None)
    assert not hasattr(body, "__len__")  # a plain iterator: the backend sends it chunked
    assert b"".join(body) == b"abc"


class CutOff(io.RawIOBase):
    def read(self, size=-1):
        raise ConnectionResetError("the client went away")


def test_a_client_that_stops_sending_is_the_clients_fault_not_the_upstreams():
    with pytest.raises(InvalidRequest, match="the upload was cut off"):
        list(BlobUpload(CutOff(), 10))
