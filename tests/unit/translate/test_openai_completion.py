"""Table tests for OpenAI text completions <-> Ollama /api/generate."""

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.openai_completion import (
    CompletionStreamConverter,
    from_openai_completion,
    to_openai_completion,
)

REQUEST_CASES = [
    pytest.param({"model": "m", "prompt": "Once"}, {"model": "m", "prompt": "Once", "stream": False},
                 id="string"),
    pytest.param({"model": "m", "prompt": ["Once"], "stream": True},
                 {"model": "m", "prompt": "Once", "stream": True}, id="list-of-one"),
    pytest.param(
        {"model": "m", "prompt": "def f(", "suffix": "    return x", "max_tokens": 32, "temperature": 0,
         "top_p": 0.5, "seed": 1, "stop": "\n\n", "frequency_penalty": 0.1, "presence_penalty": 0.2},
        {"model": "m", "prompt": "def f(", "suffix": "    return x", "stream": False,
         "options": {"temperature": 0, "top_p": 0.5, "frequency_penalty": 0.1, "presence_penalty": 0.2,
                     "seed": 1, "num_predict": 32, "stop": ["\n\n"]}},
        id="suffix-and-sampling"),
    pytest.param({"model": "m", "prompt": "x", "logprobs": 3},
                 {"model": "m", "prompt": "x", "logprobs": True, "top_logprobs": 3, "stream": False},
                 id="logprobs-count"),
    pytest.param({"model": "m", "prompt": "x", "logprobs": 0},
                 {"model": "m", "prompt": "x", "logprobs": True, "top_logprobs": 0, "stream": False},
                 id="logprobs-zero"),
    pytest.param({"model": "m", "prompt": "x", "logprobs": None}, {"model": "m", "prompt": "x", "stream": False},
                 id="logprobs-null"),
    pytest.param(
        {"model": "m", "prompt": "x", "echo": True, "n": 2, "stream_options": {"include_usage": True},
         "best_of": 2, "logit_bias": {"1": 1}, "user": "u", "raw": True, "keep_alive": 0, "num_ctx": 4096},
        {"model": "m", "prompt": "x", "best_of": 2, "logit_bias": {"1": 1}, "user": "u", "raw": True,
         "keep_alive": 0, "options": {"num_ctx": 4096}, "stream": False},
        id="gateway-fields-dropped-others-pass"),
]


@pytest.mark.parametrize("body, expected", REQUEST_CASES)
def test_request(body, expected):
    assert from_openai_completion(body) == expected


REFUSED = [
    pytest.param({"model": "m"}, "prompt", "a string", id="missing"),
    pytest.param({"model": "m", "prompt": []}, "prompt", "a string", id="empty-list"),
    pytest.param({"model": "m", "prompt": ["a", "b"]}, "prompt", "one prompt per request", id="two-prompts"),
    pytest.param({"model": "m", "prompt": [1, 2, 3]}, "prompt", "token arrays", id="tokens"),
    pytest.param({"model": "m", "prompt": [[1, 2], [3]]}, "prompt", "token arrays", id="token-lists"),
    pytest.param({"model": "m", "prompt": "x", "logprobs": -1}, "logprobs", "at least 0", id="logprobs-negative"),
    pytest.param({"model": "m", "prompt": "x", "max_tokens": "8"}, "max_tokens", "integer", id="max-tokens"),
]


@pytest.mark.parametrize("body, param, message", REFUSED)
def test_refused(body, param, message):
    with pytest.raises(InvalidRequest, match=message) as caught:
        from_openai_completion(body)
    assert caught.value.param == param


def text_completion(text, finish="stop", usage=(0, 0), logprobs=None, index=0):
    return {"id": "cmpl-1", "object": "text_completion", "created": 100, "model": "asked",
            "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


def generated(response="", **fields):
    return {"model": "up", "created_at": "2025-07-07T20:22:19Z", "response": response, "done": True, **fields}


LOGPROBS = [{"token": " upon", "logprob": -0.2, "top_logprobs": [{"token": " upon", "logprob": -0.2},
                                                                 {"token": " a", "logprob": -1.9}]},
            {"token": " a", "logprob": -0.01, "top_logprobs": []}]
LEGACY = {"tokens": [" upon", " a"], "token_logprobs": [-0.2, -0.01],
          "top_logprobs": [{" upon": -0.2, " a": -1.9}, {}], "text_offset": [0, 5]}

RESPONSE_CASES = [
    pytest.param(generated(" upon a time", done_reason="stop", prompt_eval_count=2, eval_count=3), {},
                 text_completion(" upon a time", usage=(2, 3)), id="text"),
    pytest.param(generated(" upon", done_reason="length", eval_count=1), {},
                 text_completion(" upon", finish="length", usage=(0, 1)), id="length"),
    pytest.param(generated(" upon a", done_reason="stop", thinking="hmm"), {"choice_index": 1},
                 text_completion(" upon a", index=1), id="thinking-dropped-index"),
    pytest.param(generated(" upon a", done_reason="stop", logprobs=LOGPROBS), {},
                 text_completion(" upon a", logprobs=LEGACY), id="logprobs"),
    pytest.param(generated(" upon a", done_reason="stop", logprobs=LOGPROBS), {"echo_prefix": "Once"},
                 text_completion("Once upon a", logprobs={**LEGACY, "text_offset": [4, 9]}), id="echo"),
]


@pytest.mark.parametrize("ollama_resp, options, expected", RESPONSE_CASES)
def test_response(ollama_resp, options, expected):
    result = to_openai_completion(ollama_resp, completion_id="cmpl-1", created=100, model="asked", **options)
    assert result == expected


def piece(text="", done=False, **fields):
    return {"model": "up", "created_at": "2025-07-07T20:22:19Z", "response": text, "done": done, **fields}


def frame(text, finish=None, logprobs=None, usage=False):
    out = {"id": "cmpl-1", "object": "text_completion", "created": 100, "model": "asked",
           "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}]}
    if usage:
        out["usage"] = None
    return out


def legacy(token, logprob, offset):
    return {"tokens": [token], "token_logprobs": [logprob], "top_logprobs": [{}], "text_offset": [offset]}


STREAM_CASES = [
    pytest.param([piece(" upon"), piece(""), piece(" a"), piece(done=True, done_reason="stop")], {},
                 [frame(" upon"), frame(" a"), frame("", "stop")], id="text"),
    pytest.param([piece(done=True, done_reason="length")], {}, [frame("", "length")], id="empty"),
    pytest.param([piece(" upon", thinking="x"), piece(done=True, done_reason="stop", prompt_eval_count=2,
                                                      eval_count=1)],
                 {"include_usage": True},
                 [frame(" upon", usage=True), frame("", "stop", usage=True),
                  {"id": "cmpl-1", "object": "text_completion", "created": 100, "model": "asked", "choices": [],
                   "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}],
                 id="include-usage"),
    pytest.param([piece(" upon", logprobs=[{"token": " upon", "logprob": -0.2}]),
                  piece(" a", logprobs=[{"token": " a", "logprob": -0.1}]), piece(done=True, done_reason="stop")],
                 {"echo_prefix": "Once"},
                 [frame("Once"), frame(" upon", logprobs=legacy(" upon", -0.2, 4)),
                  frame(" a", logprobs=legacy(" a", -0.1, 9)), frame("", "stop")],
                 id="echo-and-offsets"),
    pytest.param([piece(done=True, done_reason="stop")], {"echo_prefix": "Once"},
                 [frame("Once"), frame("", "stop")], id="echo-empty-completion"),
    pytest.param([piece(" upon"), {"error": "out of memory"}, piece(" a")], {},
                 [frame(" upon"),
                  {"error": {"message": "out of memory", "type": "api_error", "param": None, "code": None}}],
                 id="error-mid-stream"),
]


@pytest.mark.parametrize("chunks, options, expected", STREAM_CASES)
def test_stream(chunks, options, expected):
    converter = CompletionStreamConverter("cmpl-1", 100, "asked", **options)
    assert [out for chunk in chunks for out in converter.process(chunk)] == expected
    assert converter.finished
    assert converter.close() == []


def test_stream_closed_early():
    converter = CompletionStreamConverter("cmpl-1", 100, "asked")
    converter.process(piece(" upon"))
    assert converter.close() == [{"error": {
        "message": "the upstream closed the stream before the response was complete",
        "type": "api_error", "param": None, "code": None}}]
