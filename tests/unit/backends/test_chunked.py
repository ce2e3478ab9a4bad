import pytest

from ollama_proxy.backends.chunked import MAX_LINE, ChunkedDecoder, ChunkedFramingError

# (name, chunked body, payload, whether the body is complete)
BODIES = [
    ("one chunk", b"5\r\nhello\r\n0\r\n\r\n", b"hello", True),
    ("two chunks", b"3\r\n{}\n\r\n4\r\nab\n\n\r\n0\r\n\r\n", b"{}\nab\n\n", True),
    ("NDJSON lines", b'c\r\n{"a":1}\n{"b"\r\n5\r\n:2}\n\n\r\n0\r\n\r\n', b'{"a":1}\n{"b":2}\n\n', True),
    ("hex sizes, either case", b"A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n", b"0123456789abcdefghijk", True),
    ("extensions dropped", b"5;name=value\r\nhello\r\n0;last\r\n\r\n", b"hello", True),
    ("trailers dropped", b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n", b"hello", True),
    ("CRLF inside the data kept", b"4\r\n\r\n\r\n\r\n0\r\n\r\n", b"\r\n\r\n", True),
    ("no terminating chunk yet", b"5\r\nhello\r\n", b"hello", False),
    ("last chunk without its blank line", b"5\r\nhello\r\n0\r\n", b"hello", False),
    ("cut inside the data", b"a\r\nhello", b"hello", False),
    ("empty body", b"0\r\n\r\n", b"", True),
]


def _decode(pieces: list[bytes]) -> tuple[bytes, bool]:
    decoder = ChunkedDecoder()
    payload = b"".join(decoder.feed(piece) for piece in pieces)
    return payload, decoder.done


@pytest.mark.parametrize("name, body, payload, complete", BODIES, ids=[case[0] for case in BODIES])
def test_payload_is_the_same_however_the_body_is_split(name, body, payload, complete):
    assert _decode([body]) == (payload, complete)
    assert _decode([body[i:i + 1] for i in range(len(body))]) == (payload, complete)
    for cut in range(len(body) + 1):
        assert _decode([body[:cut], body[cut:]]) == (payload, complete), f"split at {cut}"


def test_a_whole_piece_of_several_chunks_comes_back_in_one_return():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"2\r\na\n\r\n2\r\nb\n\r\n2\r\nc\n\r\n") == b"a\nb\nc\n"
    assert not decoder.done


def test_bytes_after_the_end_are_not_payload():
    decoder = ChunkedDecoder()
    assert decoder.feed(b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n") == b"a"
    assert decoder.done


@pytest.mark.parametrize("body, message", [
    (b"zz\r\nhello\r\n", "not a chunk size"),
    (b"\r\nhello\r\n", "not a chunk size"),
    (b"0x5\r\nhello\r\n", "not a chunk size"),
    (b"-5\r\nhello\r\n", "not a chunk size"),
    (b"5\r\nhelloXY0\r\n\r\n", "not followed by CRLF"),
    (b"f" * (MAX_LINE + 1), "longer than"),
    (b"0\r\n" + b"X-Trailer: " + b"x" * MAX_LINE + b"\r\n\r\n", "longer than"),
])
def test_broken_framing_is_an_error(body, message):
    with pytest.raises(ChunkedFramingError, match=message):
        ChunkedDecoder().feed(body)


def test_a_stream_read_a_whole_chunk_at_a_time():
    lines = [b'{"n":%d}\n' % n for n in range(12)] + [b"\r\n0\r\n\r\n"]  # one chunk's data holds framing bytes
    decoder = ChunkedDecoder()
    payload = b"".join(decoder.feed(b"%x\r\n%s\r\n" % (len(line), line)) for line in lines)
    assert payload == b"".join(lines) and not decoder.done
    assert decoder.feed(b"0\r\n\r\n") == b"" and decoder.done
