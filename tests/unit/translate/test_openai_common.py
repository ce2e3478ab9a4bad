"""Table tests for what every OpenAI translation shares."""

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.openai_common import (
    GatewaySettings,
    choice_texts,
    finish_reason,
    gateway_settings,
    merge_completions,
    sum_usage,
    summed_usage_frames,
    to_openai_usage,
)
from ollama_proxy.translate.openai_completion import CompletionStreamConverter

SETTINGS_CASES = [
    pytest.param({}, GatewaySettings(), id="defaults"),
    pytest.param({"stream": False, "n": None, "stream_options": None}, GatewaySettings(), id="nulls"),
    pytest.param({"stream": True, "stream_options": {"include_usage": True}},
                 GatewaySettings(stream=True, include_usage=True), id="include-usage"),
    pytest.param({"stream": False, "stream_options": {"include_usage": True}}, GatewaySettings(),
                 id="include-usage-needs-stream"),
    pytest.param({"n": 3, "exclude_reasoning": True, "echo": True},
                 GatewaySettings(n=3, exclude_reasoning=True, echo=True), id="n-exclude-echo"),
]


@pytest.mark.parametrize("body, expected", SETTINGS_CASES)
def test_gateway_settings(body, expected):
    assert gateway_settings(body) == expected


SETTINGS_REFUSED = [
    pytest.param({"n": 0}, "n", id="n-zero"),
    pytest.param({"n": "2"}, "n", id="n-string"),
    pytest.param({"n": True}, "n", id="n-bool"),
    pytest.param({"stream": "true"}, "stream", id="stream-string"),
    pytest.param({"stream": True, "stream_options": ["include_usage"]}, "stream_options", id="options-list"),
    pytest.param({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage",
                 id="include-usage-string"),
    pytest.param({"exclude_reasoning": 1}, "exclude_reasoning", id="exclude-int"),
]


@pytest.mark.parametrize("body, param", SETTINGS_REFUSED)
def test_gateway_settings_refused(body, param):
    with pytest.raises(InvalidRequest) as caught:
        gateway_settings(body)
    assert caught.value.param == param


FINISH_CASES = [
    pytest.param("stop", False, "stop", id="stop"),
    pytest.param("length", False, "length", id="length"),
    pytest.param(None, False, "stop", id="missing"),
    pytest.param("unload", False, "stop", id="other"),
    pytest.param("stop", True, "tool_calls", id="tool-calls"),
    pytest.param("length", True, "tool_calls", id="tool-calls-win"),
]


@pytest.mark.parametrize("done_reason, tool_calls, expected", FINISH_CASES)
def test_finish_reason(done_reason, tool_calls, expected):
    assert finish_reason(done_reason, tool_calls=tool_calls) == expected


def usage(prompt, completion):
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def single(text, index, use):
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": index, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": "stop"}], "usage": use}


MERGE_CASES = [
    pytest.param([single("a", 0, usage(5, 1))], single("a", 0, usage(5, 1)), id="one"),
    pytest.param(
        [single("a", 0, usage(5, 1)), single("b", 0, usage(5, 2)), single("c", 7, usage(0, 3))],
        {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
         "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                      "logprobs": None, "finish_reason": "stop"} for i, text in enumerate("abc")],
         "usage": usage(10, 6)},
        id="three-reindexed-and-summed"),
]


@pytest.mark.parametrize("results, expected", MERGE_CASES)
def test_merge_completions(results, expected):
    assert merge_completions(results) == expected


SUM_CASES = [
    pytest.param([], usage(0, 0), id="none"),
    pytest.param([usage(1, 2), None, {"prompt_tokens": 3}], usage(4, 2), id="partial"),
    pytest.param([{**usage(10, 2), "prompt_tokens_details": {"cached_tokens": 8}}, usage(10, 3),
                  {**usage(10, 1), "prompt_tokens_details": {"cached_tokens": 9}}],
                 {**usage(30, 6), "prompt_tokens_details": {"cached_tokens": 17}}, id="cached where told"),
]


@pytest.mark.parametrize("answer, expected", [
    pytest.param({"prompt_eval_count": 4300, "eval_count": 12}, usage(4300, 12),
                 id="Ollama 0.33: not told, nothing said"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": 3990, "eval_count": 12},
                 {**usage(4300, 12), "prompt_tokens_details": {"cached_tokens": 3990}}, id="an Ollama that tells"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": 0, "eval_count": 12},
                 {**usage(4300, 12), "prompt_tokens_details": {"cached_tokens": 0}}, id="none cached, told"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": None, "eval_count": 12}, usage(4300, 12),
                 id="null: nothing said"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": "3990"}, usage(4300, 0),
                 id="not a count: nothing said"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": True}, usage(4300, 0),
                 id="a bool: nothing said"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": -1}, usage(4300, 0),
                 id="negative: nothing said"),
])
def test_openai_usage_tells_the_cached_prompt_tokens_exactly_where_ollama_does(answer, expected):
    assert to_openai_usage(answer) == expected


@pytest.mark.parametrize("usages, expected", SUM_CASES)
def test_sum_usage(usages, expected):
    assert sum_usage(usages) == expected


def _converters(n: int, *usages) -> list[CompletionStreamConverter]:
    converters = [CompletionStreamConverter("cmpl-1", 7, "llama3.2", choice_index=i) for i in range(n)]
    for converter, seen in zip(converters, usages, strict=False):  # the last choices may have seen none
        converter.usage = seen
    return converters


SUMMED_USAGE_CASES = [
    pytest.param(_converters(2, usage(1, 2), usage(3, 4)), True,
                 [{"id": "cmpl-1", "object": "text_completion", "created": 7, "model": "llama3.2", "choices": [],
                   "usage": usage(4, 6)}], id="n=2-summed-once"),
    pytest.param(_converters(3, usage(1, 2), None), True,
                 [{"id": "cmpl-1", "object": "text_completion", "created": 7, "model": "llama3.2", "choices": [],
                   "usage": usage(1, 2)}], id="a-choice-without-usage"),
    pytest.param(_converters(2, usage(1, 2), usage(3, 4)), False, [], id="not-asked-for"),
    pytest.param(_converters(1, usage(1, 2)), True, [], id="n=1-the-converter-sends-it"),
]


@pytest.mark.parametrize("converters, include_usage, expected", SUMMED_USAGE_CASES)
def test_summed_usage_frames(converters, include_usage, expected):
    assert summed_usage_frames(converters, include_usage) == expected


@pytest.mark.parametrize("answer, texts", [
    ({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}, [(0, "Hel")]),
    ({"choices": [{"index": 1, "delta": {"content": "b"}}, {"index": 0, "delta": {"content": "a"}}]},
     [(1, "b"), (0, "a")]),
    ({"choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}}]}, [(0, "whole")]),
    ({"choices": [{"index": 0, "text": "completion"}]}, [(0, "completion")]),
    ({"choices": [{"delta": {"reasoning_content": "hm"}}, {"delta": {"content": "x"}}]}, [(1, "x")]),
    ({"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}, []),
    ({"choices": [], "usage": {"prompt_tokens": 3}}, []),
    ({"error": {"message": "no"}}, []),
    ("[DONE]", []),
])
def test_choice_texts_are_each_choices_text_by_its_index(answer, texts):
    assert choice_texts(answer) == texts
