"""The bytes a request sends: as they came while nothing changes, the granted options merged once otherwise."""

import json

import pytest

from ollama_proxy.dispatch import body as body_module
from ollama_proxy.dispatch.body import OllamaBody, encode_json
from ollama_proxy.errors import InvalidRequest
from ollama_proxy.scheduler.decisions.options import reload_options
from ollama_proxy.schemas.loading import load, parse_json_object
from ollama_proxy.schemas.ollama import BODY_SCHEMAS
from tests.fakes.go_json import as_struct, object_pairs

CHAT_FIELDS = ("model", "messages", "tools", "stream", "format", "keep_alive", "options", "think")


@pytest.mark.parametrize("raw", [b'{"model":"m","messages":[{"role":"user","content":"}"}]}',
                                 b'{"model": "m", "keep_alive": "5m"}\n',
                                 b'{"model": "m", "prompt": "' + b"log line " * 40 + b'" \n }\r\n'])
def test_a_body_without_options_is_sent_the_loaded_ones_last_and_otherwise_as_it_came(monkeypatch, raw):
    monkeypatch.setattr(body_module, "PIECE_BYTES", 16)  # copied in many pieces
    sent = OllamaBody(json.loads(raw), raw).with_options({"num_ctx": 8192})
    assert sent.startswith(raw.rstrip()[:-1]) and sent.endswith(b',"options":{"num_ctx":8192}}')
    assert json.loads(sent) == {**json.loads(raw), "options": {"num_ctx": 8192}}


@pytest.mark.parametrize("raw", [b'{ \n }', b'{"model": "m"' + b" " * 5000 + b"}", b'{"model": "m"}' + b"\n" * 5000],
                         ids=["empty", "far from its brace", "far from the end"])
def test_a_body_whose_brace_is_not_found_near_its_end_is_encoded_again(raw):
    sent = OllamaBody(json.loads(raw), raw).with_options({"num_ctx": 8192})
    assert json.loads(sent) == {**json.loads(raw), "options": {"num_ctx": 8192}}
    assert len(sent) < 100


def test_a_body_asking_the_granted_options_goes_as_it_came():
    raw = b'{"model": "m", "options": {"num_ctx": 8192, "temperature": 0}, "x-unknown": [1, 2]}'
    body = OllamaBody(json.loads(raw), raw)
    assert body.asked == {"num_ctx": 8192}
    assert body.with_options({"num_ctx": 8192}) is raw


def test_other_options_are_merged_into_the_body_once_whatever_spelling_its_key_had():
    raw = b'{"model": "m", "\\u006fptions": {"num_ctx": 2048, "seed": 7}}'  # an escaped key is the same key
    body = OllamaBody(json.loads(raw), raw)
    sent = body.with_options({"num_ctx": 8192})
    assert sent.count(b"options") == 1
    assert json.loads(sent) == {"model": "m", "options": {"num_ctx": 8192, "seed": 7}}


def test_a_translated_body_is_encoded_once_however_many_times_it_is_sent():
    body = OllamaBody({"model": "m", "messages": [{"role": "user", "content": "caf\u00e9 \ud800"}]})
    assert body.encoded() is body.encoded()
    assert b"\\u00e9" in body.encoded() and b"\\ud800" in body.encoded()  # ASCII: a lone surrogate stays valid



def _native(raw: bytes) -> OllamaBody:
    """Read a chat body as the native API does, and make the body it sends."""
    body = parse_json_object(raw)
    load(BODY_SCHEMAS["/api/chat"], body)
    return OllamaBody(body, raw)


def _run_by_ollama(sent: bytes) -> dict:
    """Return the reload options Ollama runs a body with: decoded by Go, read from the map by exact name."""
    request = as_struct(json.loads(sent), CHAT_FIELDS, maps=("options",), pairs=object_pairs(sent))
    return reload_options(request.get("options"))


# Every spelling a client may give the options in, and what the scheduler reads of it.
ACCEPTED = [
    pytest.param(b'{"model":"m","options":{"num_ctx":2048}}', {"num_ctx": 2048}, id="plain"),
    pytest.param(b'{"model":"m"}', {}, id="no-options"),
    pytest.param(b'{"model":"m","\\u006fptions":{"num_ctx":2048}}', {"num_ctx": 2048}, id="escaped-key"),
    pytest.param(b'{"model":"m","options":{"num\\u005fctx":2048}}', {"num_ctx": 2048}, id="escaped-option"),
    # Ollama reads options from a map by exact name (Options.FromMap): NUM_CTX is no option, and is ignored.
    pytest.param(b'{"model":"m","options":{"num_ctx":1,"NUM_CTX":99999}}', {"num_ctx": 1}, id="option-in-capitals"),
    # A Go map keeps the last of a key given twice, as Python's dict does.
    pytest.param(b'{"model":"m","options":{"num_ctx":99999,"num_ctx":1}}', {"num_ctx": 1}, id="option-twice"),
    pytest.param(b'{"model":"m","options":{"num_gpu":0,"num_gpu":null}}', {}, id="option-then-null"),
]


@pytest.mark.parametrize("raw, asked", ACCEPTED)
@pytest.mark.parametrize("loaded", [None, {"num_ctx": 8192, "num_gpu": 99}], ids=["cold", "loaded"])
def test_ollama_runs_exactly_the_options_the_scheduler_granted(raw, asked, loaded):
    body = _native(raw)
    assert body.asked == asked
    granted = asked if loaded is None else {**loaded, **{k: v for k, v in asked.items() if k not in loaded}}
    assert _run_by_ollama(body.with_options(granted)) == granted


@pytest.mark.parametrize("raw, param", [
    pytest.param(b'{"model":"m","options":{"num_ctx":99999},"options":{}}', "options", id="twice"),
    pytest.param(b'{"model":"m","options":{"num_ctx":99999},"\\u006fptions":{"seed":1}}', "options",
                 id="then-escaped"),
    pytest.param(b'{"model":"m","\\u006fptions":{"num_gpu":0},"options":{}}', "options", id="escaped-then-plain"),
    pytest.param(b'{"model":"m","options":{},"Options":{"num_ctx":99999}}', "Options", id="then-capital"),
    pytest.param(b'{"model":"m","OPTIONS":{"num_ctx":99999},"OPTIONS":{}}', "OPTIONS", id="capitals-twice"),
    pytest.param(b'{"model":"m","Options":{"num_ctx":99999}}', "Options", id="capital"),
    pytest.param(b'{"model":"m","\\u004fptions":{"num_ctx":99999}}', "Options", id="escaped-capital"),
    pytest.param(b'{"model":"m","option\\u017f":{"num_ctx":99999}}', "option\u017f", id="long-s"),
    pytest.param(b'{"model":"m","model":"other"}', "model", id="model-twice"),
    pytest.param(b'{"model":"m","keep_alive":"5m","\\u212aeep_alive":-1}', "\u212aeep_alive", id="kelvin"),
    pytest.param(b'{"model":"m","keep_alive":"5m","keep\\u005falive":-1}', "keep_alive", id="keep-alive-escaped"),
])
def test_a_field_ollama_would_read_otherwise_is_refused(raw, param):
    with pytest.raises(InvalidRequest) as refused:
        _native(raw)
    assert refused.value.param == param and param in refused.value.message


LONG = "log line caf\u00e9 \U0001F600 \ud800 \"quoted\" \\ " * 3


@pytest.mark.parametrize("data", [
    pytest.param({"model": "m", "messages": [{"role": "user", "content": LONG}], "options": {"num_ctx": 8}},
                 id="a long message"),
    pytest.param({"a": [LONG, {"b": LONG}], "c": LONG, "d": 1.5, "e": None}, id="long strings here and there"),
    pytest.param({"shared": [LONG] * 3}, id="one string in three places"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": "short"}]}, id="nothing long"),
])
def test_long_strings_are_encoded_a_piece_at_a_time_into_the_same_bytes(monkeypatch, data):
    monkeypatch.setattr(body_module, "PIECE_CHARS", 8)
    assert encode_json(data) == json.dumps(data, separators=(",", ":")).encode()


def test_a_container_two_places_share_is_encoded_whole_the_same(monkeypatch):
    monkeypatch.setattr(body_module, "PIECE_CHARS", 8)
    shared = {"content": LONG}
    data = {"messages": [shared, shared]}
    assert encode_json(data) == json.dumps(data, separators=(",", ":")).encode()


@pytest.mark.parametrize("data, large", [
    ({"model": "m", "messages": [{"role": "user", "content": "x" * 300_000}]}, True),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}] * 2_000}, True),  # values, not characters
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}] * 10}, False),
])
def test_a_body_is_large_by_its_text_or_its_values(data, large):
    assert OllamaBody(data).large() is large
