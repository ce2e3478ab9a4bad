import pytest

from ollama_proxy.errors import UpstreamError
from ollama_proxy.translate.provider_stream import ProviderStream, completion_as_chunk, created_at, error_message

T0 = 1_700_000_000.0  # the request was sent
AT = created_at(T0 + 1)


def delta(**fields):
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def finish(reason):
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


USAGE = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}
METRICS = {"total_duration": 1_000_000_000, "load_duration": 0, "prompt_eval_count": 12,
           "prompt_eval_duration": 1_000_000_000, "eval_count": 5, "eval_duration": 0}


def chat(content="", **message):
    return {"model": "p:m", "created_at": AT, "message": {"role": "assistant", "content": content, **message},
            "done": False}


def done(reason="stop", **metrics):
    return {**chat(), "done": True, "done_reason": reason, **(metrics or METRICS)}


def run(chunks, generate=False):
    """Feed every chunk at T0 + 1 and finish; return all Ollama chunks."""
    stream = ProviderStream("p:m", T0, generate=generate)
    frames = [frame for chunk in chunks for frame in stream.process(chunk, T0 + 1)]
    return frames + stream.finish(T0 + 1)


WEATHER = {"id": "call_a", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}
TIME = {"id": "call_b", "function": {"index": 1, "name": "get_time", "arguments": {}}}

SEQUENCES = {
    "thinking then text": (
        [delta(role="assistant", content=""), delta(reasoning_content="hmm"), delta(reasoning="more"),
         delta(content="Hi"), delta(content=" there"), finish("stop"), USAGE],
        [chat(thinking="hmm"), chat(thinking="more"), chat("Hi"), chat(" there"), done()]),
    "two parallel tool calls in fragments": (
        [delta(tool_calls=[{"index": 0, "id": "call_a", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}]),
         delta(tool_calls=[{"index": 0, "function": {"arguments": '{"ci'}}]),
         delta(tool_calls=[{"index": 1, "id": "call_b", "type": "function",
                            "function": {"name": "get_time", "arguments": ""}}]),
         delta(tool_calls=[{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]),
         finish("tool_calls"), USAGE],
        [chat(tool_calls=[WEATHER, TIME]), done()]),
    "usage-only trailer after the finish": (
        [delta(content="ok"), finish("stop"), USAGE],
        [chat("ok"), done()]),
    "finish_reason length": (
        [delta(content="cut"), finish("length"), USAGE],
        [chat("cut"), done("length")]),
    "a tool call cut by the token limit is left out, the whole ones before it kept": (
        [delta(content="Checking."),
         delta(tool_calls=[{"index": 0, "id": "call_a", "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]),
         delta(tool_calls=[{"index": 1, "id": "call_b", "type": "function",
                            "function": {"name": "get_time", "arguments": '{"zo'}}]),
         finish("length"), USAGE],
        [chat("Checking."), chat(tool_calls=[WEATHER]), done("length")]),
    "a tool call cut before its arguments began": (
        [delta(tool_calls=[{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_wea"}}]),
         finish("length"), USAGE],
        [done("length")]),
    "a whole tool call at the token limit is kept": (
        [delta(tool_calls=[{"index": 0, "id": "call_b", "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"}}]),
         finish("length"), USAGE],
        [chat(tool_calls=[TIME | {"function": {**TIME["function"], "index": 0}}]), done("length")]),
    "empty completion, no usage": (
        [finish("stop")],
        [done(total_duration=1_000_000_000, load_duration=0, prompt_eval_duration=1_000_000_000,
              eval_duration=0)]),
}


@pytest.mark.parametrize("chunks, expected", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_chat_sequences(chunks, expected):
    assert run(chunks) == expected


def test_generate_shape():
    frames = run([delta(reasoning_content="t"), delta(content="a"), finish("stop"), USAGE], generate=True)
    assert frames == [
        {"model": "p:m", "created_at": AT, "response": "", "thinking": "t", "done": False},
        {"model": "p:m", "created_at": AT, "response": "a", "done": False},
        {"model": "p:m", "created_at": AT, "response": "", "done": True, "done_reason": "stop", **METRICS}]


def test_durations_come_from_the_clock_values_given():
    stream = ProviderStream("m", 100.0)
    stream.process(delta(content="a"), 100.25)  # first token: the prompt took 0.25 s
    stream.process(delta(content="b"), 101.0)
    final = stream.finish(101.5)[-1]
    assert (final["total_duration"], final["prompt_eval_duration"], final["eval_duration"]) == \
        (1_500_000_000, 250_000_000, 1_250_000_000)


def test_invalid_tool_arguments_are_a_clear_error():
    stream = ProviderStream("m", T0)
    stream.process(delta(tool_calls=[{"index": 0, "function": {"name": "f", "arguments": "{not json"}}]), T0)
    with pytest.raises(UpstreamError, match="arguments for tool 'f' that are not valid JSON"):
        stream.finish(T0)


def test_at_the_token_limit_only_the_last_call_may_be_cut():
    stream = ProviderStream("m", T0)
    stream.process(delta(tool_calls=[{"index": 0, "function": {"name": "f", "arguments": "{not json"}}]), T0)
    stream.process(delta(tool_calls=[{"index": 1, "function": {"name": "g", "arguments": '{"a'}}]), T0)
    stream.process(finish("length"), T0)
    with pytest.raises(UpstreamError, match="arguments for tool 'f' that are not valid JSON"):
        stream.finish(T0)


def test_close_without_finish_is_an_error_and_after_finish_is_done():
    cut = ProviderStream("m", T0)
    cut.process(delta(content="half"), T0)
    with pytest.raises(UpstreamError, match="before the answer was complete"):
        cut.close(T0)
    ended = ProviderStream("m", T0)
    ended.process(finish("stop"), T0)
    assert ended.close(T0)[-1]["done"] is True
    assert ended.close(T0) == [] and ended.finish(T0) == []


def test_an_error_chunk_raises_its_message():
    with pytest.raises(UpstreamError, match="quota exhausted"):
        ProviderStream("m", T0).process({"error": {"message": "quota exhausted", "code": 429}}, T0)


@pytest.mark.parametrize("body, message", [
    ({"error": {"message": "bad key"}}, "bad key"),
    ({"error": "plain"}, "plain"),
    ({"message": "top"}, "top"),
    ({"detail": "fastapi"}, "fastapi"),
    ([1], "[1]"),
])
def test_error_message(body, message):
    assert error_message(body) == message


def test_a_whole_completion_streams_as_one_chunk():
    whole = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}]}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    frames = run([completion_as_chunk(whole)])
    assert frames[0]["message"]["tool_calls"] == [{"id": "c", "function": {"index": 0, "name": "f",
                                                                          "arguments": {"x": 1}}}]
    assert (frames[1]["prompt_eval_count"], frames[1]["eval_count"]) == (1, 2)


def test_created_at_is_rfc3339_utc():
    assert created_at(0.5) == "1970-01-01T00:00:00.500000Z"
