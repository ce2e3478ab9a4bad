import pytest

from ollama_proxy.dispatch.answer_counts import AnswerCounts
from ollama_proxy.dispatch.body import OllamaBody
from ollama_proxy.dispatch.charging import context_of, prompt_charge
from ollama_proxy.scheduler.decisions.prefix import chain_of

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "please count a few words for me"}]}
TAUGHT = {"prompt_eval_count": 7, "eval_count": 8, "eval_duration": 2_000_000_000}


def _charge(path: str, data: dict, counts: AnswerCounts, chain: tuple = (), granted: dict | None = None):
    return prompt_charge(path, OllamaBody(data), "llama3.2", 4096, counts, chain, granted)


@pytest.mark.parametrize("chain", [(), chain_of("/api/chat", CHAT)], ids=["estimated", "the placement chain's"])
def test_a_prompt_is_charged_as_ollama_counted_the_models_earlier_one(chain):
    counts = AnswerCounts()
    first = _charge("/api/chat", CHAT, counts, chain)
    assert first.tokens() == first.estimate() == 18  # nothing said yet: the proxy's own count
    first.answered(TAUGHT)
    assert _charge("/api/chat", CHAT, counts, chain).tokens() == 7


def test_a_prompt_is_charged_no_more_than_the_context_it_is_read_into():
    huge = {**CHAT, "messages": [{"role": "user", "content": "word " * 100_000}]}
    assert _charge("/api/chat", huge, AnswerCounts()).tokens() == 4096
    assert _charge("/api/chat", {**huge, "options": {"num_ctx": 2048}}, AnswerCounts()).tokens() == 2048
    assert _charge("/api/chat", huge, AnswerCounts(), granted={"num_ctx": 8192}).tokens() == 8192


def test_embeddings_are_counted_by_their_text_alone_and_teach_nothing():
    counts = AnswerCounts()
    embedding = _charge("/api/embed", {"model": "all-minilm", "input": ["one two three four"]}, counts)
    embedding.answered({"prompt_eval_count": 1})
    assert embedding.tokens() == embedding.estimate() > 0 and counts.prompt("llama3.2", 18) == 18


@pytest.mark.parametrize("path, data, whole", [
    ("/api/chat", {**CHAT, "stream": False}, True),
    ("/api/generate", {"model": "llama3.2", "prompt": "hi", "stream": False}, True),
    ("/api/chat", CHAT, False),  # a stream: its tokens are counted as they come
    ("/api/embed", {"model": "all-minilm", "input": "hi", "stream": False}, False),
])
def test_only_an_answer_read_whole_has_its_generation_estimated(path, data, whole):
    assert _charge(path, data, AnswerCounts()).whole is whole


@pytest.mark.parametrize("data, granted, context", [
    ({}, None, 4096),
    ({"options": {"num_ctx": 2048}}, None, 2048),
    ({"options": {"num_ctx": 2048}}, {"num_ctx": 8192}, 8192),
    ({"options": {"num_ctx": True}}, None, 4096),
    ({"options": {"num_ctx": 0}}, None, 4096),
])
def test_the_context_is_the_grants_then_the_requests_then_the_servers(data, granted, context):
    assert context_of(data, granted, 4096) == context
