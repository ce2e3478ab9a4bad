import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.schemas.loading import load, parse_json_object
from ollama_proxy.schemas.ollama import BODY_SCHEMAS


@pytest.mark.parametrize("raw, message", [
    (b"", "the request body is empty"),
    (b"  \n", "the request body is empty"),
    (b"{bad", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"text"', "must be a JSON object"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_parse_json_object_refuses(raw, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_json_object(raw)


@pytest.mark.parametrize("path, body, param, message", [
    ("/api/chat", {"messages": []}, "model", "model is required"),
    ("/api/chat", {"model": ""}, "model", "must not be empty"),
    ("/api/chat", {"model": 5}, "model", "must be a string"),
    ("/api/chat", {"model": "m", "stream": "yes"}, "stream", "must be a boolean"),
    ("/api/chat", {"model": "m", "stream": 1}, "stream", "must be a boolean"),
    ("/api/chat", {"model": "m", "messages": {"role": "user"}}, "messages", "Not a valid list"),
    ("/api/chat", {"model": "m", "messages": [{"role": "user", "content": ["x"]}]},
     "messages[0].content", "must be a string"),
    ("/api/chat", {"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", "Missing data"),
    ("/api/chat", {"model": "m", "options": [1]}, "options", "must be an object"),
    ("/api/chat", {"model": "m", "think": 1}, "think", "must be a boolean or a string"),
    ("/api/generate", {"model": "m", "images": "abc"}, "images", "Not a valid list"),
    ("/api/generate", {"model": "m", "format": 3}, "format", "must be a string or an object"),
    ("/api/generate", {"model": "m", "context": [1, "2"]}, "context[1]", "Not a valid integer"),
    ("/api/embed", {"model": "m"}, "input", "Missing data"),
    ("/api/embed", {"model": "m", "input": [1]}, "input", "array of strings"),
    ("/api/embed", {"model": "m", "input": "x", "dimensions": 0}, "dimensions", "greater than or equal to 1"),
    ("/api/copy", {"source": "a"}, "destination", "Missing data"),
    ("/api/show", {"model": "m", "verbose": "true"}, "verbose", "must be a boolean"),
])
def test_load_names_the_first_bad_field(path, body, param, message):
    with pytest.raises(InvalidRequest) as caught:
        load(BODY_SCHEMAS[path], body)
    assert caught.value.param == param
    assert caught.value.message.startswith((f"{param}: ", f"{param} is "))  # the field named first
    assert message in caught.value.message


@pytest.mark.parametrize("path, body", [
    ("/api/chat", {"model": "m", "messages": [{"role": "user", "content": "hi", "future": 1}],
                   "brand_new_field": {"x": [1]}, "options": {"num_ctx": 8192, "unknown_opt": 1}}),
    ("/api/chat", {"model": "m", "messages": None, "tools": None, "keep_alive": None}),
    ("/api/chat", {"model": "m", "keep_alive": 0, "think": "high", "format": {"type": "object"}}),
    ("/api/generate", {"model": "m", "prompt": "p", "keep_alive": "5m", "think": True, "raw": False}),
    ("/api/pull", {"name": "old-client-style"}),
    ("/api/create", {"model": "m", "from": "llama3.2", "parameters": {"temperature": 0.1}}),
    ("/api/embed", {"model": "m", "input": ["a", "b"], "truncate": False, "dimensions": 64}),
])
def test_load_accepts_and_keeps_everything_valid(path, body):
    loaded = load(BODY_SCHEMAS[path], body)
    for key, value in body.items():
        assert loaded.get("from_" if key == "from" else key) == value


@pytest.mark.parametrize("raw, param", [
    (b'{"model": "m", "options": {"num_ctx": 99999}, "options": {}}', "options"),
    (b'{"model": "m", "options": {}, "\\u006fptions": {"num_gpu": 0}}', "options"),  # the same key, escaped
    (b'{"model": "m", "model": "other"}', "model"),
    (b'  {"messages": [], "model": "m", "messages": []}\n', "messages"),
])
def test_a_field_given_twice_is_refused_naming_it(raw, param):
    with pytest.raises(InvalidRequest) as refused:
        parse_json_object(raw)
    assert refused.value.param == param and refused.value.message.startswith(f"{param}: ")
    assert "more than once" in refused.value.message


@pytest.mark.parametrize("raw, body", [
    (b'{"model": "m", "\\u006fptions": {"num_ctx": 1}}', {"model": "m", "options": {"num_ctx": 1}}),
    (b'{"model": "m", "options": {"num_ctx": 2, "num_ctx": 1}}', {"model": "m", "options": {"num_ctx": 1}}),
    (b'{"model": "m", "x-extra": 1, "x-extra": 2}', {"model": "m", "x-extra": 2}),  # no upstream reads it
    (b'{"model": "m", "Model": "x"}', {"model": "m", "Model": "x"}),  # a lookalike: load refuses it
    (b' {"a": [{"b": 1, "b": 2}]} \r\n', {"a": [{"b": 2}]}),
])
def test_a_body_naming_each_field_once_is_read_as_json_reads_it(raw, body):
    assert parse_json_object(raw) == body


@pytest.mark.parametrize("raw, message", [
    (b'{"model": "m"} x', "Extra data at line 1 column 16"),
    (b'{"model": "m",}', "Expecting property name enclosed in double quotes at line 1 column 15"),
    (b'{"model" "m"}', "Expecting ':' delimiter at line 1 column 10"),
    (b'{"n": NaN}', "NaN is not a JSON number"),
    (b'{"n": 1e999}', "too large for a JSON number"),
])
def test_a_body_that_is_no_json_object_is_described_as_before(raw, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_json_object(raw)
