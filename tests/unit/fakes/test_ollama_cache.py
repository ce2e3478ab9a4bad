"""Tests of the prompt cache the fake Ollama's runners keep, as runner/ollamarunner/cache.go does."""

import math

import pytest

from tests.fakes.clock import ManualClock
from tests.fakes.ollama import _answer_tokens, _prompt_tokens
from tests.fakes.ollama_cache import CacheSlot, NoFreeSlot, PromptCache
from tests.fakes.ollama_runner import RunnerOptions
from tests.fakes.ollama_scheduler import OllamaScheduler


def slot(text="", *, in_use=False, last_used=-math.inf):
    """A cache slot holding the words of text."""
    return CacheSlot(text.split(), in_use, last_used)


def cache_of(*slots, multi_user=True):
    cache = PromptCache(len(slots), multi_user=multi_user)
    cache.slots = list(slots)
    return cache


@pytest.mark.parametrize(("multi_user", "slots", "prompt", "taken"), [
    pytest.param(False, [slot("a b c", last_used=2), slot("a b x y", last_used=1)], "a b x z", (1, 3),
                 id="one user: the free slot sharing the longest prefix"),
    pytest.param(False, [slot("a b x y", in_use=True), slot("a q")], "a b x z", (1, 1),
                 id="one user: a slot in use is passed over"),
    pytest.param(False, [slot("a c", last_used=5), slot("a d", last_used=1)], "a b", (0, 1),
                 id="one user: the first of equals, however recently used"),
    pytest.param(True, [slot("s a1 r1", last_used=1), slot("s b1 r2", last_used=2)], "s b1 r2 b2", (1, 3),
                 id="a conversation's next turn reuses its own slot"),
    pytest.param(True, [slot("s a", last_used=2), slot("s b", last_used=1)], "s c", (1, 1),
                 id="another conversation evicts the least recently used, forking the common prefix"),
    pytest.param(True, [slot("s a", last_used=1), slot()], "s c", (1, 1),
                 id="a slot never used is the oldest"),
    pytest.param(True, [slot("s a b", in_use=True, last_used=2), slot("x", last_used=1)], "s a c", (1, 2),
                 id="forking from a slot in use gives the common prefix"),
    pytest.param(True, [slot("s a b", last_used=5), slot("q", last_used=1)], "s a c", (1, 2),
                 id="a slot the prompt only partly continues is forked from, not cut short"),
    pytest.param(True, [slot("a b c")], "a b c", (0, 2), id="a prompt wholly cached still processes its last token"),
    pytest.param(False, [slot("a b c")], "a b", (0, 1), id="one user: a prompt wholly cached, too"),
])
def test_a_prompt_takes_the_cache_slot_ollama_would(multi_user, slots, prompt, taken):
    cache = cache_of(*slots, multi_user=multi_user)
    assert cache.load(prompt.split(), now=10) == taken
    index, cached = taken
    assert cache.slots[index] == CacheSlot(prompt.split()[:cached], in_use=True, last_used=10)


@pytest.mark.parametrize("multi_user", [False, True])
def test_no_free_slot_is_an_error(multi_user):
    with pytest.raises(NoFreeSlot):
        cache_of(slot("a", in_use=True), multi_user=multi_user).load(["a", "b"], now=1)


def test_a_slot_keeps_what_its_request_processed_for_the_next_turn():
    cache = PromptCache(2)
    first = "s you asked".split()
    assert cache.load(first, now=1) == (0, 0)
    cache.extend(0, first)
    cache.extend(0, ["answer"])
    assert cache.held() == [(4, True), (0, False)]
    cache.release(0)
    assert cache.load([*first, "answer", "more"], now=2) == (0, 4)


def test_a_next_turn_repeats_the_last_prompt_and_its_answer():
    first = {"messages": [{"role": "user", "content": "Why is the sky blue?"}], "tools": [{"name": "sky"}]}
    answer = {"thinking": "Light scatters.", "content": "Rayleigh scattering, mostly."}
    second = {**first, "messages": [*first["messages"], {"role": "assistant", "content": answer["content"]},
                                    {"role": "user", "content": "And sunsets?"}]}
    said = _prompt_tokens(first) + _answer_tokens({"content": answer["content"]})
    assert _prompt_tokens(first)[-6:] == ["<", "|", "im_start", "|", ">", "assistant"]
    assert _prompt_tokens(second)[:len(said)] == said
    thought = _prompt_tokens(first) + _answer_tokens({"thinking": answer["thinking"]})
    assert _prompt_tokens(second)[:len(thought)] != thought  # thinking is not repeated: the cache stops there


def test_images_are_tokens_that_only_the_same_image_matches():
    def asking(*images):
        return _prompt_tokens({"messages": [{"role": "user", "content": "what is it?", "images": list(images)}]})

    assert asking("aGVsbG8=") == asking("aGVsbG8=") != asking("d29ybGQ=")
    assert len(asking("aGVsbG8=", "d29ybGQ=")) == len(asking()) + 2
    generated = _prompt_tokens({"system": "Be brief.", "prompt": "Describe it.", "images": ["aGVsbG8="]})
    assert generated[-3:] == ["Describe", "it", "."] and generated[-4].startswith("<image ")


def test_the_scheduler_gives_each_runner_its_cache_slots_and_a_reload_empties_them():
    sched = OllamaScheduler(ManualClock(), num_parallel=2, prompt_cache=True)
    prompt = "s you asked".split()
    first = sched.submit("llama3.2")
    assert sched.load_prompt(first, prompt) == 0
    sched.processed(first, prompt)
    sched.processed(first, ["answer"])
    assert sched.cache_slots("llama3.2") == [(4, True), (0, False)]
    sched.finish(first)
    second = sched.submit("llama3.2")
    assert sched.load_prompt(second, [*prompt, "answer", "more"]) == 4
    assert (second.prompt_tokens, second.cached_tokens, second.cache_slot) == (5, 4, 0)
    sched.finish(second)
    reloaded = sched.submit("llama3.2", RunnerOptions(num_ctx=8192, num_ctx_auto=False))
    assert sched.stats().reloads == 1
    assert sched.cache_slots("llama3.2") == [(0, False), (0, False)]
    assert sched.load_prompt(reloaded, prompt) == 0


def test_without_a_prompt_cache_records_say_nothing_of_one():
    sched = OllamaScheduler(ManualClock())
    record = sched.submit("llama3.2")
    assert sched.load_prompt(record, ["a"]) is None and sched.cache_slots("llama3.2") == []
    assert (record.prompt_tokens, record.cached_tokens, record.cache_slot) == (None, None, None)
