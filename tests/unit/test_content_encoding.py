"""Request bodies decoded by their Content-Encoding, within the body limit, a piece at a time."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zlib

import pytest
import zstandard
from flask import Flask, jsonify, request

from ollama_proxy.content_encoding import (
    PIECE_BYTES,
    BodyDecoding,
    DecodedBody,
    content_encodings,
)
from ollama_proxy.errors import InvalidRequest, PayloadTooLarge, ProxyError
from ollama_proxy.schemas.loading import read_request_body

BODY = b'{"model": "llama3.2", "input": "' + b"hello " * 2000 + b'"}'
LIMIT = 1024 * 1024


def deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def zstd_streamed(data: bytes, **params) -> bytes:
    """Compress as Codex does: a stream, so the frame does not carry the content size."""
    compressor = zstandard.ZstdCompressor(**params)
    out = io.BytesIO()
    with compressor.stream_writer(out, closefd=False) as writer:
        writer.write(data)
    return out.getvalue()


def zeros_zstd(size: int) -> bytes:
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    piece = bytes(1024 * 1024)
    return b"".join(compressor.compress(piece) for _ in range(size // len(piece))) + compressor.flush()


def zeros_gzip(size: int) -> bytes:
    compressor = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    piece = bytes(1024 * 1024)
    return b"".join(compressor.compress(piece) for _ in range(size // len(piece))) + compressor.flush()


def decode(sent: bytes, encodings: list[str], limit: int = LIMIT) -> bytes:
    return DecodedBody(io.BytesIO(sent), encodings, limit).read()


@pytest.mark.parametrize(("header", "encodings"), [
    pytest.param("zstd", ["zstd"], id="one"),
    pytest.param(" GZIP , zstd ", ["gzip", "zstd"], id="two, in the order applied, any case"),
    pytest.param("identity", [], id="identity is no encoding"),
    pytest.param("", [], id="none"),
])
def test_content_encodings(header, encodings):
    assert content_encodings(header) == encodings


@pytest.mark.parametrize(("sent", "encodings"), [
    pytest.param(zstd_streamed(BODY), ["zstd"], id="zstd, streamed as Codex sends it"),
    pytest.param(zstandard.ZstdCompressor().compress(BODY[:100]) + zstandard.ZstdCompressor().compress(BODY[100:]),
                 ["zstd"], id="zstd, two frames"),
    pytest.param(gzip.compress(BODY), ["gzip"], id="gzip"),
    pytest.param(gzip.compress(BODY[:100]) + gzip.compress(BODY[100:]), ["x-gzip"], id="gzip, two members"),
    pytest.param(zlib.compress(BODY), ["deflate"], id="deflate, the zlib format"),
    pytest.param(deflate_raw(BODY), ["deflate"], id="deflate, raw as some clients send it"),
    pytest.param(zstd_streamed(gzip.compress(BODY)), ["gzip", "zstd"], id="gzip then zstd"),
])
def test_bodies_decode(sent, encodings):
    assert decode(sent, encodings) == BODY


@pytest.mark.parametrize(("sent", "encodings"), [
    pytest.param(b"", ["zstd"], id="empty zstd"),
    pytest.param(b"", ["gzip"], id="empty gzip"),
])
def test_an_empty_body_stays_empty(sent, encodings):
    assert decode(sent, encodings) == b""


@pytest.mark.parametrize(("bomb", "encodings"), [
    pytest.param(zeros_zstd, ["zstd"], id="zstd"),
    pytest.param(zeros_gzip, ["gzip"], id="gzip"),
])
def test_a_decompression_bomb_stops_at_the_limit(bomb, encodings):
    sent = bomb(32 * LIMIT)
    assert len(sent) < LIMIT // 8
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as caught:
            decode(sent, encodings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "decodes to more than the limit (1048576 bytes)" in caught.value.message
    assert peak < 8 * LIMIT  # pieces, not the whole of what the body would decode to


def test_the_bytes_as_sent_are_held_to_the_limit_too():
    noise = zstandard.ZstdCompressor(level=1).compress(bytes(range(256)) * 8192)
    padding = b"\x50\x2a\x4d\x18" + (LIMIT).to_bytes(4, "little") + bytes(LIMIT)  # a skippable frame
    with pytest.raises(PayloadTooLarge) as caught:
        decode(padding + noise, ["zstd"])
    assert "larger than the limit" in caught.value.message


@pytest.mark.parametrize(("sent", "encodings", "status", "message"), [
    pytest.param(BODY, ["br"], 415, "Content-Encoding br is not supported", id="an unknown encoding"),
    pytest.param(BODY, ["gzip", "compress"], 415, "compress is not supported", id="one of two unknown"),
    pytest.param(BODY, ["gzip"] * 1000, 415, "lists 1000 encodings: at most 3", id="too many layers"),
    pytest.param(b"not zstd at all", ["zstd"], 400, "not valid zstd data", id="not zstd"),
    pytest.param(b"not gzip at all", ["gzip"], 400, "not valid gzip data", id="not gzip"),
    pytest.param(gzip.compress(BODY)[:-12], ["gzip"], 400, "ends before", id="a cut gzip body"),
    pytest.param(zstd_streamed(BODY, compression_params=zstandard.ZstdCompressionParameters(window_log=24)),
                 ["zstd"], 400, "not valid zstd data", id="a zstd window over 8 MiB"),
])
def test_bodies_refused(sent, encodings, status, message):
    with pytest.raises(InvalidRequest) as caught:
        decode(sent, encodings)
    assert caught.value.status == status and message in caught.value.message


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd"])
def test_a_read_of_nothing_decodes_nothing(encoding):
    bomb = {"gzip": zeros_gzip, "deflate": lambda size: zlib.compress(bytes(size)), "zstd": zeros_zstd}[encoding]
    body = DecodedBody(io.BytesIO(bomb(8 * LIMIT)), [encoding], LIMIT)
    assert body.read(0) == b""
    assert body.readinto(bytearray()) == 0
    with pytest.raises(PayloadTooLarge):
        body.read()


def test_reads_are_pieces():
    body = DecodedBody(io.BytesIO(zeros_zstd(4 * LIMIT)), ["zstd"], 8 * LIMIT)
    assert len(body.read(10 * PIECE_BYTES)) <= PIECE_BYTES


# --- the middleware under Flask, as the app wires it ----------------------------------------

@pytest.fixture
def client():
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = LIMIT
    app.wsgi_app = BodyDecoding(app.wsgi_app, LIMIT)

    @app.post("/echo")
    def echo():
        body = read_request_body(request)
        return jsonify(size=len(body), encoding=request.headers.get("Content-Encoding"),
                       length=request.content_length)

    app.register_error_handler(ProxyError, lambda error: (jsonify(error=error.message), error.status))
    return app.test_client()


def test_a_view_reads_the_decoded_body_and_no_encoding(client):
    answer = client.post("/echo", data=zstd_streamed(BODY), headers={"Content-Encoding": "zstd"})
    assert answer.status_code == 200
    assert answer.json == {"size": len(BODY), "encoding": None, "length": None}


def test_a_plain_body_is_untouched(client):
    answer = client.post("/echo", data=BODY)
    assert answer.json == {"size": len(BODY), "encoding": None, "length": len(BODY)}


@pytest.mark.parametrize(("sent", "headers", "status"), [
    pytest.param(lambda: zeros_zstd(8 * LIMIT), {"Content-Encoding": "zstd"}, 413, id="a bomb"),
    pytest.param(lambda: BODY, {"Content-Encoding": "br"}, 415, id="an unknown encoding"),
    pytest.param(lambda: b"garbage", {"Content-Encoding": "gzip"}, 400, id="not gzip"),
])
def test_errors_reach_the_error_handlers(client, sent, headers, status):
    assert client.post("/echo", data=sent(), headers=headers).status_code == status
