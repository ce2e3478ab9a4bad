import io

import pytest

from ollama_proxy.backends.blob_upload import UPLOAD_PIECE
from ollama_proxy.backends.form_upload import form_body
from ollama_proxy.errors import ProxyError


def test_the_head_read_goes_first_then_the_rest_in_pieces():
    rest = b"r" * (UPLOAD_PIECE + 5)
    body = form_body(b"head", io.BytesIO(rest), 4 + len(rest))
    assert len(body) == 4 + len(rest)  # the backend sends Content-Length
    assert [len(piece) for piece in body] == [4, UPLOAD_PIECE, 5]


def test_an_unknown_length_is_sent_chunked():
    body = form_body(b"head", io.BytesIO(b"rest"), None)
    assert not hasattr(body, "__len__")
    assert b"".join(body) == b"headrest"


@pytest.mark.parametrize("length", [8, None])
def test_a_form_is_sent_once_a_second_try_fails_instead_of_sending_half(length):
    body = form_body(b"head", io.BytesIO(b"rest"), length)
    first = iter(body)
    assert next(first) == b"head"  # a first server took part of it
    with pytest.raises(ProxyError, match="cannot be sent again") as refused:
        list(body)
    assert refused.value.status == 502


def test_a_form_not_yet_sent_may_go_to_another_server():
    body = form_body(b"head", io.BytesIO(b"rest"), 8)
    iter(body)  # a try that failed before sending a byte (connection refused)
    assert b"".join(body) == b"headrest"
