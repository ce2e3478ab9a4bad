"""The bytes a request sends: as they came while nothing changes, the granted options merged once otherwise."""

import json

import pytest

from ollama_proxy.dispatch.body import OllamaBody


@pytest.mark.parametrize("raw", [b'{"model":"m","messages":[{"role":"user","content":"}"}]}',
                                 b'{"model": "m", "keep_alive": "5m"}\n', b'{"model":"m","Options":{"seed":1}}'])
def test_a_body_without_options_is_sent_the_loaded_ones_last_and_otherwise_as_it_came(raw):
    sent = OllamaBody(json.loads(raw), raw).with_options({"num_ctx": 8192})
    assert sent.startswith(raw.rstrip()[:-1]) and sent.endswith(b',"options":{"num_ctx":8192}}')
    assert json.loads(sent) == {**json.loads(raw), "options": {"num_ctx": 8192}}


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
