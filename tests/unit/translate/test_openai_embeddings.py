"""Table tests for OpenAI embeddings <-> Ollama /api/embed."""

import base64
import struct

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.openai_embeddings import from_openai_embeddings, to_openai_embeddings

REQUEST_CASES = [
    pytest.param({"model": "e", "input": "sky"}, {"model": "e", "input": "sky"}, id="string"),
    pytest.param({"model": "e", "input": ["sky", "grass"]}, {"model": "e", "input": ["sky", "grass"]},
                 id="list"),
    pytest.param({"model": "e", "input": "sky", "dimensions": 256, "encoding_format": "base64"},
                 {"model": "e", "input": "sky", "dimensions": 256}, id="dimensions-format-not-sent"),
    pytest.param({"model": "e", "input": "sky", "user": "u", "truncate": False, "keep_alive": "1m",
                  "num_ctx": 512, "options": {"num_thread": 2}},
                 {"model": "e", "input": "sky", "user": "u", "truncate": False, "keep_alive": "1m",
                  "options": {"num_ctx": 512, "num_thread": 2}}, id="pass-through-and-options"),
]


@pytest.mark.parametrize("body, expected", REQUEST_CASES)
def test_request(body, expected):
    assert from_openai_embeddings(body) == expected


REFUSED = [
    pytest.param({"model": "e"}, "input", id="missing"),
    pytest.param({"model": "e", "input": []}, "input", id="empty-list"),
    pytest.param({"model": "e", "input": [1, 2, 3]}, "input", id="tokens"),
    pytest.param({"model": "e", "input": [[1, 2], [3]]}, "input", id="token-lists"),
    pytest.param({"model": "e", "input": ["a", 1]}, "input", id="mixed"),
    pytest.param({"model": "e", "input": "a", "dimensions": 0}, "dimensions", id="dimensions-zero"),
    pytest.param({"model": "e", "input": "a", "encoding_format": "int8"}, "encoding_format", id="format"),
]


@pytest.mark.parametrize("body, param", REFUSED)
def test_refused(body, param):
    with pytest.raises(InvalidRequest) as caught:
        from_openai_embeddings(body)
    assert caught.value.param == param


def test_refused_token_arrays_say_how_langchain_sends_text():
    with pytest.raises(InvalidRequest, match="check_embedding_ctx_length=False"):
        from_openai_embeddings({"model": "e", "input": [[1, 2], [3]]})


def embedding_list(vectors, tokens=0):
    return {"object": "list", "model": "asked",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


RESPONSE_CASES = [
    pytest.param({"embeddings": [[0.5, -1.0], [0.1, 0.2, 0.3]], "prompt_eval_count": 8}, "float",
                 embedding_list([[0.5, -1.0], [0.1, 0.2, 0.3]], 8), id="float"),
    pytest.param({"embeddings": [[0.5, -1.0], [0.1, 0.2, 0.3]], "prompt_eval_count": 8}, "base64",
                 embedding_list(["AAAAPwAAgL8=", "zczMPc3MTD6amZk+"], 8), id="base64-little-endian-float32"),
    pytest.param({"embeddings": []}, "float", embedding_list([]), id="none"),
    pytest.param({}, "base64", embedding_list([]), id="missing"),
]


@pytest.mark.parametrize("ollama_resp, fmt, expected", RESPONSE_CASES)
def test_response(ollama_resp, fmt, expected):
    assert to_openai_embeddings(ollama_resp, model="asked", encoding_format=fmt) == expected


def test_base64_decodes_as_the_sdk_does():
    vector = [0.1, -2.5, 3.0e-7, 1234.5]
    encoded = to_openai_embeddings({"embeddings": [vector]}, model="e", encoding_format="base64")
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert struct.unpack("<4f", raw) == struct.unpack("<4f", struct.pack("<4f", *vector))


def test_response_refuses_unknown_format():
    with pytest.raises(InvalidRequest) as caught:
        to_openai_embeddings({"embeddings": [[1.0]]}, model="e", encoding_format="int8")
    assert caught.value.param == "encoding_format"
