"""Table tests for the complete Ollama /api/chat response -> Responses API Response translation."""

from __future__ import annotations

import json

import pytest
from openai.types.responses import Response

from ollama_proxy.translate.responses.answer import to_responses_response
from tests.unit.translate.responses.helpers import (
    CLOSE_CALL,
    CODEX_REQUEST,
    CREATED,
    FULL_REQUEST,
    LOGPROBS,
    OPENAI_LOGPROBS,
    REQUEST,
    TOKYO,
    WEATHER,
    function_call,
    ids,
    message,
    namespaced_call,
    reasoning,
    response,
    sdk_client,
    usage,
)


def ollama(message=None, **fields):
    """Return a final Ollama /api/chat response."""
    return {"model": "llama3.2", "created_at": "2025-07-07T20:22:19.184789Z",
            "message": {"role": "assistant", "content": "", **(message or {})},
            "done": True, "done_reason": "stop", **fields}


RESPONSE_CASES = [
    pytest.param(ollama({"content": "Hello!"}, prompt_eval_count=26, eval_count=3), REQUEST,
                 response([message("msg_1", "Hello!")], usage(26, 3)), id="text"),
    pytest.param(ollama({"content": "Hello!", "thinking": "Greet back."}, prompt_eval_count=26, eval_count=9),
                 REQUEST, response([reasoning("rs_1", "Greet back."), message("msg_1", "Hello!")], usage(26, 9)),
                 id="thinking then text"),
    pytest.param(ollama({"tool_calls": [{"id": "call_abc", **TOKYO},
                                        {"function": {"name": "get_time", "arguments": {}}}]},
                        prompt_eval_count=169, eval_count=18), REQUEST,
                 response([function_call("fc_1", "call_abc", "get_weather", '{"city":"Tokyo"}'),
                           function_call("fc_2", "call_1", "get_time", "{}")], usage(169, 18)),
                 id="tool calls: Ollama's id kept, else a new call id"),
    pytest.param(ollama({"content": "Checking.", "tool_calls": [TOKYO]}), REQUEST,
                 response([message("msg_1", "Checking."),
                           function_call("fc_1", "call_1", "get_weather", '{"city":"Tokyo"}')], usage(0, 0)),
                 id="text and a tool call both kept"),
    pytest.param(ollama({"content": "Once upon"}, done_reason="length", prompt_eval_count=5, eval_count=2),
                 REQUEST, response([message("msg_1", "Once upon", "incomplete")], usage(5, 2), "incomplete"),
                 id="length: incomplete"),
    pytest.param(ollama({"thinking": "Hmm"}, done_reason="length"), REQUEST,
                 response([reasoning("rs_1", "Hmm")], usage(0, 0), "incomplete"),
                 id="length while thinking: reasoning only"),
    pytest.param(ollama(), REQUEST, response([message("msg_1", "")], usage(0, 0)),
                 id="empty completion is an empty message"),
    pytest.param(ollama({"content": "Hi"}, logprobs=LOGPROBS), REQUEST,
                 response([message("msg_1", "Hi", logprobs=OPENAI_LOGPROBS)], usage(0, 0)), id="logprobs"),
    pytest.param(ollama({"content": "{}"}), FULL_REQUEST, response(
        [message("msg_1", "{}")], usage(0, 0), instructions="Be brief.", tools=[WEATHER],
        tool_choice="required", temperature=0.5, top_p=0.9, max_output_tokens=64, parallel_tool_calls=False,
        metadata={"k": "v"}, reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_object"}}, truncation="disabled", user="u1", top_logprobs=2),
        id="request fields echoed"),
    pytest.param(ollama({"tool_calls": [CLOSE_CALL, {"function": {"name": "close_agent", "arguments": {}}}]}),
                 CODEX_REQUEST, response(
        [namespaced_call("fc_1", "call_1", "close_agent", "multi_agent_v1", '{"target":"a"}'),
         namespaced_call("fc_2", "call_2", "close_agent", "multi_agent_v1", "{}")],
        usage(0, 0), tools=CODEX_REQUEST["tools"]),
        id="a namespace's function: name and namespace apart, qualified or bare"),
]


def _to_response(ollama_resp, request):
    return to_responses_response(ollama_resp, response_id="resp_1", created_at=CREATED, model="gpt-test",
                                 new_id=ids(), request=request)


@pytest.mark.parametrize(("ollama_resp", "request_body", "expected"), RESPONSE_CASES)
def test_to_responses_response(ollama_resp, request_body, expected):
    assert _to_response(ollama_resp, request_body) == expected


@pytest.mark.parametrize(("ollama_resp", "request_body", "expected"), RESPONSE_CASES)
def test_response_matches_sdk_model(ollama_resp, request_body, expected):
    Response.model_validate(_to_response(ollama_resp, request_body))


# --- the official SDK, end to end (no network: httpx.MockTransport) ----------------------

def test_sdk_create_parses_the_response():
    body = _to_response(ollama({"content": "Hello!", "thinking": "Greet.", "tool_calls": [TOKYO]}), REQUEST)
    with sdk_client(json.dumps(body).encode(), "application/json") as client:
        result = client.responses.create(model="gpt-test", input="Hi")
    assert result.output_text == "Hello!"
    assert [item.type for item in result.output] == ["reasoning", "message", "function_call"]
    assert result.output[2].arguments == '{"city":"Tokyo"}'


@pytest.mark.parametrize("answer, cached", [
    # Ollama 0.33 does not say: the field the Responses usage requires (an integer), 0 as Ollama's own Responses API
    pytest.param({"prompt_eval_count": 4300, "eval_count": 5}, 0, id="Ollama 0.33: not told, the required 0"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": 3990, "eval_count": 5}, 3990,
                 id="an Ollama that tells"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": None, "eval_count": 5}, 0, id="null"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": "3990", "eval_count": 5}, 0,
                 id="not a count"),
])
def test_the_cached_input_tokens_are_what_ollama_says(answer, cached):
    from ollama_proxy.translate.responses._common import token_usage

    usage = token_usage(answer)
    assert usage["input_tokens"] == 4300 and usage["input_tokens_details"]["cached_tokens"] == cached
