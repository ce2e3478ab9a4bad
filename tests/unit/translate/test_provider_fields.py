import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.provider_fields import fold, read_as_go, to_provider_passthrough, with_fields
from tests.fakes.go_json import as_struct

CHAT_FIELDS = ("model", "messages", "stream", "stream_options", "models", "route")
MESSAGES = [{"role": "user", "content": "hi"}]


def as_go_reads(body: dict) -> dict:
    """Return a chat body as a Go provider decodes it (stream_options' own field too)."""
    decoded = as_struct(body, CHAT_FIELDS)
    if isinstance(decoded.get("stream_options"), dict):
        decoded["stream_options"] = as_struct(decoded["stream_options"], ("include_usage",))
    return decoded


@pytest.mark.parametrize("name, folded", [
    ("stream", "STREAM"), ("Stream_Options", "STREAM_OPTIONS"),
    ("\u212aeep_alive", "KEEP_ALIVE"), ("\u017ftream", "STREAM"), ("modèle", "MODèLE"),
])
def test_fold_is_gos(name, folded):
    assert fold(name) == folded


def test_the_last_key_in_any_case_is_the_one_go_reads():
    assert read_as_go({"stream": False, "STREAM": True}, "stream") is True
    assert read_as_go({"Stream": True}, "stream") is True
    assert read_as_go({"streams": True}, "stream") is None


def test_written_fields_replace_every_key_read_as_them():
    body = {"Model": "other", "user": "u", "\u017fTREAM": False}
    assert with_fields(body, {"model": "m", "stream": True}) == {"user": "u", "model": "m", "stream": True}


PASSTHROUGH = {
    "no stream: nothing added": (
        {"model": "m", "messages": MESSAGES},
        {"model": "m", "messages": MESSAGES}, True),
    "a stream without stream_options asks for the usage; the client did not": (
        {"model": "m", "messages": MESSAGES, "stream": True},
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}, False),
    "include_usage false is turned on; the client did not ask": (
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": False, "x": 1}},
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"x": 1, "include_usage": True}},
        False),
    "include_usage true: the client asked": (
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}, True),
    "a stream asked for in another case is a stream": (
        {"model": "m", "messages": MESSAGES, "Stream": True},
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}, False),
    "include_usage off in another case, after the lower-case one, is still turned on": (
        {"model": "m", "messages": MESSAGES, "stream": True,
         "stream_options": {"include_usage": True, "INCLUDE_USAGE": False}},
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}, False),
    "stream_options in another case is read as the provider reads it, then replaced": (
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True},
         "Stream_Options": {"include_usage": False}},
        {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}, False),
    "a model in another case gives way to the routed one": (
        {"model": "m", "MODEL": "expensive", "messages": MESSAGES},
        {"model": "m", "messages": MESSAGES}, True),
}


@pytest.mark.parametrize("body, sent, wanted", PASSTHROUGH.values(), ids=PASSTHROUGH.keys())
def test_passthrough_body(body, sent, wanted):
    out, usage_wanted = to_provider_passthrough(body)
    assert (out, usage_wanted) == (sent, wanted)
    assert as_go_reads(out) == sent  # a Go provider reads exactly this


@pytest.mark.parametrize("body, param", [
    ({"model": "m", "messages": MESSAGES, "models": ["m", "expensive"]}, "models"),
    ({"model": "m", "messages": MESSAGES, "Models": ["expensive"]}, "Models"),
    ({"model": "m", "messages": MESSAGES, "route": "fallback"}, "route"),
    ({"model": "m", "messages": MESSAGES, "stream": "yes"}, "stream"),
    ({"model": "m", "messages": MESSAGES, "stream": True, "stream_options": "usage"}, "stream_options"),
])
def test_passthrough_refuses(body, param):
    with pytest.raises(InvalidRequest) as caught:
        to_provider_passthrough(body)
    assert caught.value.param == param and param in caught.value.message
