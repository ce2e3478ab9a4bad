"""Tests of the prompt cache the fake Ollama's runners keep, as llama-server does under Ollama 0.30 and later."""

import pytest
import requests

from tests.fakes.clock import ManualClock
from tests.fakes.ollama import FakeOllama, _answer_tokens, _prompt_tokens
from tests.fakes.ollama_cache import CacheSlot, PromptCache
from tests.fakes.ollama_runner import RunnerOptions
from tests.fakes.ollama_scheduler import OllamaScheduler
from tests.llama_server_cases import REPLY, SLOTS, expected, messages, parametrized, reads


def slot(text="", *, in_use=False, last_used=-1.0):
    """A slot holding the words of text."""
    return CacheSlot(text.split(), in_use, last_used)


def cache_of(*slots, ram=(), ram_tokens=None):
    cache = PromptCache(len(slots), ram_tokens=ram_tokens)
    cache.slots = list(slots)
    cache.ram = [text.split() for text in ram]
    return cache


@pytest.mark.parametrize(("slots", "ram", "prompt", "taken", "saved"), [
    pytest.param([slot("s a1 r1", last_used=1), slot("s b1 r2", last_used=2)], (), "s b1 r2 b2", (1, 3),
                 ["s a1 r1"], id="a conversation's next turn takes the slot most like it"),
    pytest.param([slot("x y z w", last_used=2), slot("a b", last_used=1)], (), "x q q q q q q q q", (0, 1),
                 ["x y z w", "a b"], id="more than a tenth alike: similar (and, keeping a quarter, saved first)"),
    pytest.param([slot("x y z w", last_used=2), slot("a b", last_used=1)], (), "x q q q q q q q q q", (1, 0),
                 ["a b", "x y z w"], id="a tenth alike or less: the least recently used, saved to RAM first"),
    pytest.param([slot("a c", last_used=5), slot(), slot("a d", last_used=1)], (), "b", (1, 0), ["a c", "a d"],
                 id="a never-used slot is the least recently used"),
    pytest.param([slot(), slot()], (), "b", (1, 0), [], id="the last of equals"),
    pytest.param([slot("s a b", in_use=True), slot("x", last_used=1)], (), "s a c", (1, 0), ["x"],
                 id="a slot in use is passed over"),
    pytest.param([slot("t b1", last_used=1), slot("u c1", last_used=2)], ("s a1 r1 a2",), "s a1 r1 a2 r2 a3",
                 (0, 4), ["t b1", "u c1"], id="a conversation pushed out of its slot comes back from RAM"),
    pytest.param([slot("s a1", last_used=1), slot("s b1", last_used=2)], ("s a1 r1 a2",), "s a1 r1 a2 r2 a3",
                 (0, 2), ["s a1 r1 a2", "s b1"],
                 id="a slot similar enough, keeping all it holds, is taken as it is: RAM is not looked at"),
    pytest.param([slot("s a1 r1 a2 r2 a3 r3 a4 r4", last_used=1)], ("s b1",), "s b1 r1 b2", (0, 2),
                 ["s a1 r1 a2 r2 a3 r3 a4 r4"],
                 id="similar, but keeping under half the slot: saved first, and a better prompt loaded from RAM"),
    pytest.param([slot("a b c d", last_used=1)], ("x y",), "x y z w q q q q q q q", (0, 2), ["a b c d"],
                 id="LRU: the saved prompt that shares more is loaded"),
    pytest.param([slot("s t u", last_used=1)], ("s t u v w x y z",), "s t u v w", (0, 3), ["s t u v w x y z"],
                 id="similar keeping over half: nothing saved nor loaded, though RAM holds more of it"),
    pytest.param([slot("a b c")], (), "a b c", (0, 2), [], id="a prompt wholly cached still reads its last token"),
])
def test_a_prompt_takes_the_slot_llama_server_would(slots, ram, prompt, taken, saved):
    cache = cache_of(*slots, ram=ram)
    assert cache.load(prompt.split(), now=10) == taken
    index, cached = taken
    assert cache.slots[index] == CacheSlot(prompt.split()[:cached], in_use=True, last_used=cache.slots[index].last_used)
    assert [" ".join(tokens) for tokens in cache.ram] == saved


def test_the_ram_cache_keeps_one_copy_and_drops_the_oldest_when_full():
    cache = cache_of(slot("a b c", last_used=1), slot("x y", last_used=2), ram_tokens=6)
    cache._save(["a", "b"])  # contained in the slot's prompt: the longer one replaces it when saved
    cache.load("q r".split(), now=3)  # every idle slot saved once a request has its slot
    assert cache.ram == [["x", "y"], ["a", "b", "c"]] or cache.ram == [["a", "b", "c"], ["x", "y"]]
    cache._save(["n", "o", "p"])
    assert cache.ram[-1] == ["n", "o", "p"] and sum(map(len, cache.ram)) <= 6
    cache._save(list("abcdefgh"))  # larger than the whole cache: never saved
    assert list("abcdefgh") not in cache.ram


def test_without_a_ram_cache_a_pushed_out_conversation_is_gone():
    cache = PromptCache(1, ram_tokens=0)
    cache.load("s a1".split(), now=1)
    cache.release(0, now=2)
    cache.load("t b1".split(), now=3)
    cache.release(0, now=4)
    assert cache.load("s a1 r a2".split(), now=5) == (0, 0) and cache.ram == []


@parametrized
def test_the_fake_reads_from_cache_as_the_table_says(case):
    with FakeOllama(num_parallel=SLOTS, prompt_cache=True, reports_cached=True) as fake:  # the count read back
        fake.script("llama3.2", reply=REPLY)
        last, found = {}, []
        for step in case.steps:
            answer = requests.post(fake.url + "/api/chat", timeout=10, json={
                "model": "llama3.2", "messages": messages(case, step), "stream": False}).json()
            fake.wait_for(lambda: fake.scheduler.records()[-1].finished_at is not None)  # its slot freed
            found.append((reads(answer["prompt_eval_cached_count"], answer["prompt_eval_count"], last.get(step.who)),
                          fake.scheduler.records()[-1].cache_slot))
            last[step.who] = answer["prompt_eval_count"]
    assert found == expected(case)


def test_the_fake_leaves_out_what_it_read_from_cache_as_ollama_0_33_does_and_says_it_when_asked_to():
    body = {"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "why is the sky blue?"}]}
    for settings, key in (({}, False), ({"reports_cached": False}, False), ({"reports_cached": True}, True)):
        with FakeOllama(num_parallel=1, prompt_cache=True, **settings) as fake:
            first = requests.post(fake.url + "/api/chat", json=body, timeout=10).json()
            again = requests.post(fake.url + "/api/chat", json=body, timeout=10).json()
        assert ("prompt_eval_cached_count" in first, "prompt_eval_cached_count" in again) == (key, key), settings
        assert first["prompt_eval_count"] == again["prompt_eval_count"]  # every prompt token, cached or not
        if key:
            assert (first["prompt_eval_cached_count"], again["prompt_eval_cached_count"]) == (
                0, again["prompt_eval_count"] - 1)


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
    assert sched.cache_slots("llama3.2") == [(0, False), (4, True)]  # the last of the never-used slots
    sched.finish(first)
    second = sched.submit("llama3.2")
    assert sched.load_prompt(second, [*prompt, "answer", "more"]) == 4
    assert (second.prompt_tokens, second.cached_tokens, second.cache_slot) == (5, 4, 1)
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
