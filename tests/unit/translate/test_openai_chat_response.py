"""Table tests for Ollama /api/chat responses -> OpenAI chat completions and chunks."""

import pytest

from ollama_proxy.translate.openai_chat_response import ChatStreamConverter, to_openai_chat_completion
from tests.unit.translate.new_ids import counter_ids


def done(**fields):
    return {"model": "up", "created_at": "2025-07-07T20:22:19Z", "done": True, **fields}


def reply(content="", **message):
    return {"role": "assistant", "content": content, **message}


def completion(message, finish="stop", usage=(0, 0), logprobs=None, index=0):
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 100, "model": "asked",
            "choices": [{"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


CALL = {"function": {"name": "weather", "arguments": {"city": "Oslo", "note": "ø"}}}
LOGPROBS = [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
             "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                              {"token": "Yo", "logprob": -2.5}]}]

COMPLETION_CASES = [
    pytest.param(
        done(message=reply("Hello"), done_reason="stop", prompt_eval_count=26, eval_count=3), {},
        completion({"role": "assistant", "content": "Hello"}, usage=(26, 3)),
        id="text"),
    pytest.param(
        done(message=reply(""), done_reason="stop"), {},
        completion({"role": "assistant", "content": ""}),
        id="empty-and-counts-missing"),
    pytest.param(
        done(message=reply("Hel"), done_reason="length", prompt_eval_count=5, eval_count=1), {},
        completion({"role": "assistant", "content": "Hel"}, finish="length", usage=(5, 1)),
        id="length"),
    pytest.param(
        done(message=reply("4", thinking="2+2"), done_reason="stop"), {},
        completion({"role": "assistant", "content": "4", "reasoning_content": "2+2", "reasoning": "2+2"}),
        id="thinking"),
    pytest.param(
        done(message=reply("4", thinking="2+2"), done_reason="stop"), {"exclude_reasoning": True},
        completion({"role": "assistant", "content": "4"}),
        id="thinking-excluded"),
    pytest.param(
        done(message=reply("", tool_calls=[CALL, {"id": "call_ollama", "function": {"name": "time"}}]),
             done_reason="stop"), {},
        completion({"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city":"Oslo","note":"ø"}'}},
            {"id": "call_ollama", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
            finish="tool_calls"),
        id="tool-calls-finish-fixed"),
    pytest.param(
        done(message=reply("Let me check.", tool_calls=[CALL]), done_reason="stop"), {"choice_index": 2},
        completion({"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city":"Oslo","note":"ø"}'}}]},
            finish="tool_calls", index=2),
        id="text-and-tool-call-at-index"),
    pytest.param(
        done(message=reply("Hi"), done_reason="stop", logprobs=LOGPROBS), {},
        completion({"role": "assistant", "content": "Hi"}, logprobs={"content": [
            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
             "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                              {"token": "Yo", "logprob": -2.5, "bytes": None}]}]}),
        id="logprobs"),
]


@pytest.mark.parametrize("ollama_resp, options, expected", COMPLETION_CASES)
def test_completion(ollama_resp, options, expected):
    result = to_openai_chat_completion(ollama_resp, completion_id="chatcmpl-1", created=100, model="asked",
                                       new_id=counter_ids(), **options)
    assert result == expected


def chunk(content="", done_=False, **fields):
    message = {"role": "assistant", "content": content}
    for key in ("thinking", "tool_calls"):
        if key in fields:
            message[key] = fields.pop(key)
    return {"model": "up", "created_at": "2025-07-07T20:22:19Z", "message": message, "done": done_, **fields}


def frame(delta, finish=None, usage=False, logprobs=None, index=0):
    out = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 100, "model": "asked",
           "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
    if usage:
        out["usage"] = None
    return out


ROLE = {"role": "assistant", "content": ""}


def call_delta(index, call_id, name, arguments):
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


STREAM_CASES = [
    pytest.param(
        [chunk("Hel"), chunk("lo"), chunk(done_=True, done_reason="stop", prompt_eval_count=3, eval_count=2)], {},
        [frame(ROLE), frame({"content": "Hel"}), frame({"content": "lo"}), frame({}, "stop")],
        id="text"),
    pytest.param(
        [chunk(thinking="Hmm"), chunk(thinking=" ok"), chunk("4"), chunk(done_=True, done_reason="stop")], {},
        [frame(ROLE), frame({"reasoning_content": "Hmm", "reasoning": "Hmm"}),
         frame({"reasoning_content": " ok", "reasoning": " ok"}), frame({"content": "4"}), frame({}, "stop")],
        id="thinking-then-text"),
    pytest.param(
        [chunk(thinking="Hmm"), chunk("4"), chunk(done_=True, done_reason="stop")], {"exclude_reasoning": True},
        [frame(ROLE), frame({"content": "4"}), frame({}, "stop")],
        id="thinking-excluded"),
    pytest.param(
        [chunk(""), chunk("", thinking=""), chunk("Hi"), chunk(done_=True, done_reason="stop")], {},
        [frame(ROLE), frame({"content": "Hi"}), frame({}, "stop")],
        id="empty-chunks-send-nothing"),
    pytest.param(
        [chunk(done_=True, done_reason="stop")], {},
        [frame(ROLE), frame({}, "stop")],
        id="empty-completion"),
    pytest.param(
        [chunk("Hi"), chunk("", done_=True, done_reason="length", eval_count=1)], {},
        [frame(ROLE), frame({"content": "Hi"}), frame({}, "length")],
        id="length"),
    pytest.param(
        [chunk(tool_calls=[CALL]), chunk(done_=True, done_reason="stop")], {},
        [frame(ROLE),
         frame({"tool_calls": [call_delta(0, "call_1", "weather", '{"city":"Oslo","note":"ø"}')]}),
         frame({}, "tool_calls")],
        id="tool-call"),
    pytest.param(
        [chunk(tool_calls=[CALL, {"id": "call_x", "function": {"name": "time", "arguments": {}}}]),
         chunk(tool_calls=[{"function": {"name": "news", "arguments": {"n": 3}}}]),
         chunk(done_=True, done_reason="stop")], {},
        [frame(ROLE),
         frame({"tool_calls": [call_delta(0, "call_1", "weather", '{"city":"Oslo","note":"ø"}'),
                               call_delta(1, "call_x", "time", "{}")]}),
         frame({"tool_calls": [call_delta(2, "call_2", "news", '{"n":3}')]}),
         frame({}, "tool_calls")],
        id="parallel-tool-calls-counted-across-stream"),
    pytest.param(
        [chunk("Checking."), chunk(done_=True, done_reason="stop", tool_calls=[CALL])], {},
        [frame(ROLE), frame({"content": "Checking."}),
         frame({"tool_calls": [call_delta(0, "call_1", "weather", '{"city":"Oslo","note":"ø"}')]}),
         frame({}, "tool_calls")],
        id="tool-call-in-done-chunk"),
    pytest.param(
        [chunk("Hi"), chunk(done_=True, done_reason="stop", prompt_eval_count=26, eval_count=1)],
        {"include_usage": True},
        [frame(ROLE, usage=True), frame({"content": "Hi"}, usage=True), frame({}, "stop", usage=True),
         {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 100, "model": "asked", "choices": [],
          "usage": {"prompt_tokens": 26, "completion_tokens": 1, "total_tokens": 27}}],
        id="include-usage"),
    pytest.param(
        [chunk("Hi"), chunk(done_=True, done_reason="stop")], {"choice_index": 3},
        [frame(ROLE, index=3), frame({"content": "Hi"}, index=3), frame({}, "stop", index=3)],
        id="choice-index"),
    pytest.param(
        [chunk("Hi", logprobs=[{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}]),
         chunk(done_=True, done_reason="stop")], {},
        [frame(ROLE),
         frame({"content": "Hi"}, logprobs={"content": [
             {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}]}),
         frame({}, "stop")],
        id="logprobs"),
    pytest.param(
        [chunk("Hi"), {"error": "model runner crashed"}, chunk("ignored"), chunk(done_=True)], {},
        [frame(ROLE), frame({"content": "Hi"}),
         {"error": {"message": "model runner crashed", "type": "api_error", "param": None, "code": None}}],
        id="error-mid-stream-finishes"),
    pytest.param(
        [{"error": "model 'x' not found"}], {"include_usage": True},
        [{"error": {"message": "model 'x' not found", "type": "api_error", "param": None, "code": None}}],
        id="error-first"),
    pytest.param(
        [chunk("Hi"), chunk(done_=True, done_reason="stop"), chunk("late"), chunk(done_=True)], {},
        [frame(ROLE), frame({"content": "Hi"}), frame({}, "stop")],
        id="nothing-after-done"),
]


@pytest.mark.parametrize("chunks, options, expected", STREAM_CASES)
def test_stream(chunks, options, expected):
    converter = ChatStreamConverter("chatcmpl-1", 100, "asked", new_id=counter_ids(), **options)
    frames = [out for ollama_chunk in chunks for out in converter.process(ollama_chunk)]
    assert frames == expected
    assert converter.finished
    assert converter.close() == []


CLOSE_CASES = [
    pytest.param([chunk("Hi")], [
        {"error": {"message": "the upstream closed the stream before the response was complete",
                   "type": "api_error", "param": None, "code": None}}], id="ended-before-done"),
    pytest.param([chunk("Hi"), chunk(done_=True, done_reason="stop")], [], id="ended-after-done"),
]


@pytest.mark.parametrize("chunks, expected", CLOSE_CASES)
def test_close(chunks, expected):
    converter = ChatStreamConverter("chatcmpl-1", 100, "asked", new_id=counter_ids())
    for ollama_chunk in chunks:
        converter.process(ollama_chunk)
    assert converter.close() == expected
    assert converter.finished


def test_fail_then_nothing():
    converter = ChatStreamConverter("chatcmpl-1", 100, "asked", new_id=counter_ids())
    assert converter.fail("read timeout") == [
        {"error": {"message": "read timeout", "type": "api_error", "param": None, "code": None}}]
    assert converter.process(chunk("Hi")) == []


def test_usage_kept_for_the_gateway():
    converter = ChatStreamConverter("chatcmpl-1", 100, "asked", new_id=counter_ids())
    converter.process(chunk(done_=True, done_reason="stop", prompt_eval_count=4, eval_count=6))
    assert converter.usage == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
