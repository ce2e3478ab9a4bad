import itertools

import pytest

from ollama_proxy.lines import LineDecoder, ndjson_line, nonblank_lines

STREAMS = {
    "ndjson": b'{"a":1}\n{"b":2}\n',
    "no end": b'{"a":1}\n{"b":2}',
    "blank lines": b'\n{"a":1}\n\n\n{"b":2}\n\n',
    "crlf": b'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n',
    "sse": b'event: ping\ndata: {"a":1}\n\n: comment\ndata: [DONE]\n\n',
    "utf-8": '{"x":"é✓"}\n{"y":"😀"}\n'.encode(),
    "one newline": b"\n",
    "empty": b"",
}


def _decoded(chunks) -> list[bytes]:
    decoder = LineDecoder()
    lines = [line for chunk in chunks for line in decoder.decode(chunk)]
    return lines + decoder.flush()


def _expected(data: bytes) -> list[bytes]:
    *lines, rest = data.split(b"\n")
    return lines + ([rest] if rest else [])


@pytest.mark.parametrize("data", STREAMS.values(), ids=STREAMS.keys())
def test_lines_split_at_every_position_come_out_whole(data):
    for cut in range(len(data) + 1):
        assert _decoded([data[:cut], data[cut:]]) == _expected(data), cut


@pytest.mark.parametrize("data", STREAMS.values(), ids=STREAMS.keys())
def test_lines_split_at_every_pair_of_positions_come_out_whole(data):
    for first, second in itertools.combinations_with_replacement(range(len(data) + 1), 2):
        assert _decoded([data[:first], data[first:second], data[second:]]) == _expected(data), (first, second)


@pytest.mark.parametrize("data", STREAMS.values(), ids=STREAMS.keys())
def test_lines_fed_a_byte_at_a_time_come_out_whole(data):
    assert _decoded([data[i:i + 1] for i in range(len(data))]) == _expected(data)


def test_each_chunk_hands_back_the_lines_it_completes():
    decoder = LineDecoder()
    assert decoder.decode(b'{"a"') == []
    assert decoder.decode(b":1}") == []
    assert decoder.decode(b'\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert decoder.decode(b"") == []
    assert decoder.flush() == [b'{"c"']
    assert decoder.flush() == []


def test_a_carriage_return_stays_on_its_line():
    assert _decoded([b"a\r", b"\nb\r\n"]) == [b"a\r", b"b\r"]


@pytest.mark.parametrize("chunks, lines", [
    ([b'{"a":1}\n{"b":2}\n'], [b'{"a":1}', b'{"b":2}']),
    ([b'{"a"', b':1}\n{"b', b'":2}\n'], [b'{"a":1}', b'{"b":2}']),
    ([b'{"a":1}', b'\n', b'\n{"b":2}'], [b'{"a":1}', b'{"b":2}']),
    ([b'{"a":1}\r\n'], [b'{"a":1}\r']),
    ([b"\n\n", b" \t\n"], []),
    ([], []),
    ([b'{"x":"', b'\xc3', b'\xa9"}\n'], [b'{"x":"\xc3\xa9"}']),
])
def test_nonblank_lines_skip_what_holds_only_white_space(chunks, lines):
    assert list(nonblank_lines(iter(chunks))) == lines


def test_ndjson_line():
    assert ndjson_line({"a": "é"}) == '{"a":"é"}\n'.encode()
