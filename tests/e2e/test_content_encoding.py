"""Compressed request bodies through the real server: zstd as Codex sends it, gzip, on every surface.

A body is decoded as it is read, held to limits.max_body_bytes (1 MiB here) decoded: a
decompression bomb is a 413 in the surface's own error shape, an unknown encoding a 415.
"""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import openai
import pytest
import requests
import zstandard

from tests.e2e.conftest import GENERATE, MANAGE, MAX_BODY, auth
from tests.e2e.surfaces import assert_error_shape

ENCODERS = {
    "zstd": lambda body: zstandard.ZstdCompressor(level=3).compress(body),
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}
SURFACES = [  # path, error dialect, a chat body
    pytest.param("/api/chat", "ollama", {"model": "llama3.2", "stream": False,
                                         "messages": [{"role": "user", "content": "hello"}]}, id="native"),
    pytest.param("/v1/chat/completions", "openai",
                 {"model": "llama3.2", "messages": [{"role": "user", "content": "hello"}]}, id="openai"),
    pytest.param("/v1/responses", "openai", {"model": "llama3.2", "input": "hello"}, id="responses"),
    pytest.param("/v1/messages", "anthropic", {"model": "llama3.2", "max_tokens": 16,
                                               "messages": [{"role": "user", "content": "hello"}]}, id="anthropic"),
]


class CompressingTransport(httpx.HTTPTransport):
    """An httpx transport that sends every request body compressed, as Codex does."""

    def __init__(self, encoding: str):
        super().__init__()
        self.encoding = encoding

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = ENCODERS[self.encoding](request.read())
        headers = httpx.Headers(request.headers)
        headers["Content-Encoding"], headers["Content-Length"] = self.encoding, str(len(body))
        return super().handle_request(httpx.Request(request.method, request.url, headers=headers, content=body))


def zstd_bomb(size: int) -> bytes:
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    piece = bytes(1024 * 1024)
    return b"".join(compressor.compress(piece) for _ in range(size // len(piece))) + compressor.flush()


def post(proxy, path: str, data: bytes, encoding: str) -> requests.Response:
    headers = {**auth(), "Content-Type": "application/json", "Content-Encoding": encoding}
    return requests.post(proxy.url + path, data=data, headers=headers, timeout=30)


@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
def test_the_openai_sdk_sends_compressed_bodies(proxy, fake, encoding):
    http_client = httpx.Client(transport=CompressingTransport(encoding))
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE, max_retries=0, http_client=http_client) as client:
        response = client.responses.create(model="llama3.2", input="hello " * 500, instructions="Be brief.")
        with client.responses.stream(model="llama3.2", input="stream me") as stream:
            streamed = stream.get_final_response()
    assert response.output_text == "You said: " + "hello " * 500
    assert streamed.output_text == "You said: stream me"
    first = fake.calls("/api/chat")[0]
    assert first.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "content-encoding" not in first.headers


@pytest.mark.parametrize(("path", "dialect", "body"), SURFACES)
@pytest.mark.parametrize("encoding", ["zstd", "gzip", "deflate"])
def test_every_surface_decodes(proxy, fake, path, dialect, body, encoding):
    answer = post(proxy, path, ENCODERS[encoding](json.dumps(body).encode()), encoding)
    assert answer.status_code == 200, answer.text
    assert "hello" in answer.text
    sent = fake.last("/api/chat")
    assert sent.json["messages"][-1]["content"] == "hello" and "content-encoding" not in sent.headers


@pytest.mark.parametrize(("path", "dialect", "body"), SURFACES)
def test_a_decompression_bomb_is_a_413_in_the_surface_shape(proxy, fake, path, dialect, body):
    bomb = zstd_bomb(64 * MAX_BODY)
    assert len(bomb) < MAX_BODY // 100
    answer = post(proxy, path, bomb, "zstd")
    assert answer.status_code == 413
    assert "limit (1048576 bytes)" in assert_error_shape(dialect, answer)
    assert fake.requests == []
    assert requests.get(proxy.url + "/health", timeout=5).status_code == 200  # the worker is still there


@pytest.mark.parametrize(("path", "dialect", "body"), SURFACES)
def test_an_unknown_encoding_is_a_415(proxy, fake, path, dialect, body):
    answer = post(proxy, path, json.dumps(body).encode(), "br")
    assert answer.status_code == 415
    assert "Content-Encoding br is not supported" in assert_error_shape(dialect, answer)
    assert fake.requests == []


def test_a_body_that_does_not_decode_is_a_400(proxy, fake):
    answer = post(proxy, "/v1/responses", b'{"model": "llama3.2", "input": "hello"}', "zstd")
    assert answer.status_code == 400
    assert "not valid zstd data" in assert_error_shape("openai", answer)


def test_an_unauthenticated_body_is_never_decoded(proxy, fake):
    headers = {"Content-Type": "application/json", "Content-Encoding": "zstd"}
    answer = requests.post(proxy.url + "/v1/responses", data=zstd_bomb(64 * MAX_BODY), headers=headers, timeout=30)
    assert answer.status_code == 401


# Routes the proxy forwards as they came, the body streamed on: an account route, and one Ollama may add later.
PASS_THROUGH = ["/api/me", "/api/a-route-ollama-adds-later"]


def send_pieces(data: bytes):
    """Yield ``data`` in three pieces: requests sends a generator chunked."""
    third = len(data) // 3
    yield from (data[:third], data[third:2 * third], data[2 * third:])


@pytest.mark.parametrize("path", PASS_THROUGH)
@pytest.mark.parametrize("encoding", ["zstd", "gzip", "deflate"])
def test_a_pass_through_route_gets_the_body_decoded_and_whole(proxy, fake, path, encoding):
    body = json.dumps({"note": "".join(f"{n:07d}" for n in range(60_000))}).encode()  # pieces of 64 KiB and more
    data = ENCODERS[encoding](body)
    headers = {**auth(MANAGE), "Content-Type": "application/json", "Content-Encoding": encoding}
    for sent_as in (data, send_pieces(data)):  # with a Content-Length, then chunked
        fake.reset()
        requests.post(proxy.url + path, data=sent_as, headers=headers, timeout=30)
        forwarded = fake.last(path)
        assert forwarded.body == body
        assert "content-encoding" not in forwarded.headers
        assert forwarded.headers.get("content-length", str(len(body))) == str(len(body))


@pytest.mark.parametrize("path", PASS_THROUGH)
def test_a_pass_through_body_that_does_not_decode_is_a_400(proxy, fake, path):
    headers = {**auth(MANAGE), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    answer = requests.post(proxy.url + path, data=b'{"not": "gzip"}', headers=headers, timeout=30)
    assert answer.status_code == 400
    assert "not valid gzip data" in assert_error_shape("ollama", answer)


@pytest.mark.parametrize("path", PASS_THROUGH)
def test_a_pass_through_body_that_decodes_past_the_limit_is_a_413(proxy, fake, path):
    headers = {**auth(MANAGE), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    answer = requests.post(proxy.url + path, data=gzip.compress(bytes(4 * MAX_BODY)), headers=headers, timeout=30)
    assert answer.status_code == 413
    assert "limit (1048576 bytes)" in assert_error_shape("ollama", answer)
