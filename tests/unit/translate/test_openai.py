"""Check the public OpenAI translation names, and that the openai SDK reads what they make."""

import array
import base64

import pytest
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ollama_proxy.translate import openai as translate
from tests.unit.translate.new_ids import counter_ids


def test_every_public_name_is_exported():
    assert sorted(translate.__all__) == sorted(name for name in translate.__all__ if hasattr(translate, name))


CALL = {"function": {"name": "weather", "arguments": {"city": "Oslo"}}}
DONE = {"done": True, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 7}
LOGPROBS = [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.1}]}]


def chat_completion(message):
    return translate.to_openai_chat_completion(
        {**DONE, "message": message, "logprobs": LOGPROBS}, completion_id="chatcmpl-1", created=1, model="m",
        new_id=counter_ids())


def chat_chunks(include_usage):
    converter = translate.ChatStreamConverter("chatcmpl-1", 1, "m", new_id=counter_ids(),
                                              include_usage=include_usage)
    chunks = [{"message": {"role": "assistant", "content": "", "thinking": "hm"}, "done": False},
              {"message": {"role": "assistant", "content": "Hi"}, "done": False, "logprobs": LOGPROBS},
              {"message": {"role": "assistant", "content": "", "tool_calls": [CALL, CALL]}, "done": False},
              {**DONE, "message": {"role": "assistant", "content": ""}}]
    return [frame for chunk in chunks for frame in converter.process(chunk)]


def text_chunks():
    converter = translate.CompletionStreamConverter("cmpl-1", 1, "m", include_usage=True, echo_prefix="Once")
    chunks = [{"response": " upon", "done": False, "logprobs": LOGPROBS}, {**DONE, "response": ""}]
    return [frame for chunk in chunks for frame in converter.process(chunk)]


SDK_CASES = [
    pytest.param(ChatCompletion, lambda: [chat_completion({"role": "assistant", "content": "Hi",
                                                           "thinking": "hm"})], id="chat-text"),
    pytest.param(ChatCompletion, lambda: [chat_completion({"role": "assistant", "content": "",
                                                           "tool_calls": [CALL]})], id="chat-tool-calls"),
    pytest.param(ChatCompletion, lambda: [translate.merge_completions(
        [chat_completion({"role": "assistant", "content": "a"}), chat_completion({"role": "assistant",
                                                                                  "content": "b"})])],
        id="chat-merged"),
    pytest.param(ChatCompletionChunk, lambda: chat_chunks(False), id="chat-stream"),
    pytest.param(ChatCompletionChunk, lambda: chat_chunks(True), id="chat-stream-usage"),
    pytest.param(Completion, lambda: [translate.to_openai_completion(
        {**DONE, "response": " upon", "logprobs": LOGPROBS}, completion_id="cmpl-1", created=1, model="m",
        echo_prefix="Once")], id="text"),
    # Text stream chunks carry finish_reason null as OpenAI's do; the SDK's
    # Completion type forbids it and so reads streams without validating.
    pytest.param(Completion, lambda: text_chunks()[-1:], id="text-stream-usage"),
    # The SDK decodes base64 embeddings before its type sees them: see below.
    pytest.param(CreateEmbeddingResponse, lambda: [translate.to_openai_embeddings(
        {"embeddings": [[0.5, -1.0]], "prompt_eval_count": 2}, model="e")], id="embeddings"),
    pytest.param(Model, lambda: translate.to_openai_model_list(
        {"models": [{"name": "u/m:1", "modified_at": "2025-05-05T00:37:44Z"}]})["data"], id="models"),
]


@pytest.mark.parametrize("sdk_type, make", SDK_CASES)
def test_sdk_reads_it(sdk_type, make):
    for obj in make():
        assert sdk_type.model_validate(obj).model_dump(exclude_unset=True) == obj


def test_sdk_decodes_base64_embeddings():
    # What the SDK does without numpy (with numpy: frombuffer(dtype="float32"), the same bytes).
    vector = [0.1, -2.5, 3.0e-7]
    encoded = translate.to_openai_embeddings({"embeddings": [vector]}, model="e", encoding_format="base64")
    decoded = array.array("f", base64.b64decode(encoded["data"][0]["embedding"])).tolist()
    assert decoded == array.array("f", vector).tolist()
