"""A body's long strings read a piece at a time: the same object, or the same refusal, as one read whole."""

from __future__ import annotations

import json

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.schemas import long_strings
from ollama_proxy.schemas.loading import parse_json_object

LONG = "log line " * 3 + "caf\u00e9 \U0001F600 " + "word " * 4


def _refusal(raw: bytes) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_object(raw)
    return str(caught.value)


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of 8 bytes, a place to cut looked for over 5: every string here is long."""
    monkeypatch.setattr(long_strings, "PIECE_BYTES", 8)
    monkeypatch.setattr(long_strings, "CUT_SEARCH_BYTES", 5)


@pytest.mark.parametrize("raw", [
    pytest.param(json.dumps({"model": "m", "messages": [{"role": "user", "content": LONG}]}), id="text"),
    pytest.param(json.dumps({"m": LONG}, ensure_ascii=False), id="not ASCII, unescaped"),
    pytest.param(json.dumps({"m": ["\\u00e9" * 9, '\\"' * 20, "\\\\" * 12 + '"']}), id="escapes everywhere"),
    pytest.param('{"m": "' + "\\ud83d\\ude00" * 5 + '\\ud83d x"}', id="surrogate pairs and a lone one"),
    pytest.param('{"a": [' + "1, " * 30 + '1], "b": "' + LONG + '"}', id="a long run of numbers"),
    pytest.param('{"' + LONG + '": 1}', id="a long key"),
    pytest.param('{"s": "' + LONG + '", "t": "' + LONG + '"}', id="two long strings"),
    pytest.param('{"m": "' + LONG + '", "m": 1}', id="a field no schema knows, given twice: the last"),
])
def test_a_body_is_read_as_it_is_whole(small_pieces, raw):
    assert parse_json_object(raw.encode()) == json.loads(raw)


@pytest.mark.parametrize("raw", [
    pytest.param('{"m": "' + LONG + '\x01"}', id="a control character in a long string"),
    pytest.param('{"m": "' + LONG + '\\x"}', id="a bad escape in a long string"),
    pytest.param('{"m": "' + LONG, id="a long string never closed"),
    pytest.param('{"m": "' + LONG + '" "n": 1}', id="a comma missing after a long string"),
    pytest.param('{"model": "' + LONG + '", "model": "m"}', id="a field given twice"),
    pytest.param('{"a": [' + "1, " * 30 + '1 "b": "' + LONG + '"}', id="a comma missing before one"),
])
def test_a_bad_body_is_refused_as_it_is_whole(small_pieces, monkeypatch, raw):
    refused = _refusal(raw.encode())
    monkeypatch.setattr(long_strings, "PIECE_BYTES", 1 << 30)
    assert refused == _refusal(raw.encode())


def test_utf8_is_decoded_a_piece_at_a_time_as_it_is_whole(small_pieces):
    raw = ("caf\u00e9 \U0001F600 " * 9).encode()
    assert long_strings.decoded_text(raw) == raw.decode()
    with pytest.raises(UnicodeDecodeError):
        long_strings.decoded_text(raw + b"\xf0\x9f")


@pytest.mark.parametrize("text", ["a\u00e9\u20ac\U0001F600" * 12, "\U0001F600" * 9 + "x" + "\u20ac" * 9],
                         ids=["characters of one to four bytes", "four- and three-byte runs"])
def test_a_piece_never_cuts_a_character_and_the_body_is_never_decoded_whole(small_pieces, monkeypatch, text):
    def whole(raw):
        raise AssertionError("the body was decoded whole")

    monkeypatch.setattr("ollama_proxy.schemas.loading.decoded_text", whole)
    raw = json.dumps({"model": "m", "prompt": text}, ensure_ascii=False).encode()
    assert parse_json_object(raw) == {"model": "m", "prompt": text}
