import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.schemas.field_names import BODY_FIELDS, check_field_names, fold
from tests.fakes.go_json import as_struct
from tests.fakes.go_json import fold as go_fold


@pytest.mark.parametrize("name, folded", [
    ("model", "MODEL"),
    ("Model", "MODEL"),
    ("keep_alive", "KEEP_ALIVE"),
    ("\u212aeep_alive", "KEEP_ALIVE"),  # the Kelvin sign folds to K
    ("option\u017f", "OPTIONS"),  # the long s folds to S
    ("opt\u0130ons", "OPT\u0130ONS"),  # a dotted capital I is no I to Go's folding
    ("mo\u00dfel", "MO\u00dfEL"),  # nor is a sharp s an SS (Python's upper() would say SS)
])
def test_fold_is_gos(name, folded):
    assert fold(name) == folded
    assert go_fold(name) == folded


@pytest.mark.parametrize("body, param", [
    ({"model": "llama3.2", "Model": "qwen3:32b"}, "Model"),
    ({"Model": "qwen3:32b", "model": "llama3.2"}, "Model"),
    ({"model": "llama3.2", "MODEL": "qwen3:32b"}, "MODEL"),
    ({"model": "m", "options": {}, "Options": {"num_ctx": 99999}}, "Options"),
    ({"model": "m", "Keep_Alive": -1}, "Keep_Alive"),
    ({"model": "m", "\u212aeep_alive": -1}, "\u212aeep_alive"),
    ({"model": "m", "option\u017f": {"num_ctx": 1}}, "option\u017f"),
    ({"model": "m", "Stream_Options": {"include_usage": False}}, "Stream_Options"),
    ({"model": "m", "Models": ["x"]}, "Models"),
    ({"model": "m", "messages": [{"role": "user", "content": "hi", "Content": "other"}]}, "messages[0].Content"),
    ({"model": "m", "input": [{"type": "message", "Role": "system"}]}, "input[0].Role"),
    ({"source": "a", "Destination": "b"}, "Destination"),
])
def test_lookalike_keys_are_refused(body, param):
    with pytest.raises(InvalidRequest) as refused:
        check_field_names(body)
    assert refused.value.param == param
    assert param in refused.value.message and "case-sensitive" in refused.value.message


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "options": {"NUM_CTX": 1}},
    {"model": "m", "unknown_field": 1, "Unknown_Field": 2},  # no upstream reads either into a field
    {"model": "m", "format": {"properties": {"Name": {}, "name": {}}}},  # the client's own schema
    {"model": "m", "tools": [{"function": {"parameters": {"properties": {"Model": {}}}}}]},
    {"model": "m", "input": ["text", "more"]},
    {"model": "m", "messages": "not a list"},
])
def test_bodies_without_lookalikes_pass(body):
    check_field_names(body)


def test_a_body_that_passes_is_read_by_go_as_the_proxy_reads_it():
    # What the check lets through names every known field once, exactly: Go reads it as Python does.
    body = {"model": "llama3.2", "options": {"num_ctx": 2048}, "keep_alive": "5m", "stream": False}
    check_field_names(body)
    assert as_struct(body, tuple(BODY_FIELDS)) == body
