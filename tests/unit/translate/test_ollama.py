import pytest

from ollama_proxy.errors import UpstreamError
from ollama_proxy.translate.ollama import chunk_text, fold_chunks

CALL = {"function": {"name": "f", "arguments": {"x": 1}}}


FOLDS = {
    "chat: thinking, text, tool call in a chunk": (
        [{"model": "m", "message": {"role": "assistant", "content": "", "thinking": "hm"}, "done": False},
         {"model": "m", "message": {"role": "assistant", "content": "Hi "}, "done": False},
         {"model": "m", "message": {"role": "assistant", "content": "there", "tool_calls": [CALL]}, "done": False},
         {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
          "eval_count": 3}],
        {"model": "m", "message": {"role": "assistant", "content": "Hi there", "thinking": "hm", "tool_calls": [CALL]},
         "done": True, "done_reason": "stop", "eval_count": 3}),
    "chat: tool call in the done chunk": (
        [{"message": {"role": "assistant", "content": "x"}, "done": False},
         {"message": {"role": "assistant", "content": "", "tool_calls": [CALL]}, "done": True}],
        {"message": {"role": "assistant", "content": "x", "tool_calls": [CALL]}, "done": True}),
    "generate: text, thinking, logprobs and context": (
        [{"response": "a", "thinking": "t", "logprobs": [{"token": "a"}], "done": False},
         {"response": "b", "logprobs": [{"token": "b"}], "done": False},
         {"response": "", "done": True, "context": [1, 2]}],
        {"response": "ab", "thinking": "t", "logprobs": [{"token": "a"}, {"token": "b"}], "done": True,
         "context": [1, 2]}),
    "generate: empty answer": (
        [{"response": "", "done": True, "done_reason": "length"}],
        {"response": "", "done": True, "done_reason": "length"}),
}


@pytest.mark.parametrize("chunks, expected", list(FOLDS.values()), ids=list(FOLDS))
def test_fold_chunks(chunks, expected):
    assert fold_chunks(chunks) == expected


@pytest.mark.parametrize("chunks, message", [
    ([], "before it began"),
    ([{"response": "a", "done": False}, {"error": "model crashed"}], "model crashed"),
    ([{"response": "a", "done": False}], "before it was done"),
])
def test_fold_refuses_broken_streams(chunks, message):
    with pytest.raises(UpstreamError, match=message):
        fold_chunks(chunks)


@pytest.mark.parametrize("chunk, text", [
    ({"message": {"role": "assistant", "content": "Hi", "thinking": "hm"}, "done": False}, "Hi"),
    ({"message": {"role": "assistant", "content": "", "tool_calls": [CALL]}, "done": False}, ""),
    ({"response": "there", "done": False}, "there"),
    ({"message": None, "response": "x"}, "x"),
    ({"message": {"content": 5}}, ""),
    ({"error": "boom"}, ""),
    (["not", "a", "chunk"], ""),
])
def test_chunk_text_is_the_answer_text_and_not_thinking_or_tool_calls(chunk, text):
    assert chunk_text(chunk) == text
