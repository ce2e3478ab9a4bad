"""The proxy's mirror of one server's llama-server: held to the table the real engine and the fake are held to."""

import pytest

from ollama_proxy.scheduler.decisions.caches import PromptCaches
from ollama_proxy.scheduler.decisions.prefix import chain_of, prompt_tokens
from tests.llama_server_cases import SLOTS, expected, messages, parametrized, reads


def chat(*texts: str) -> tuple:
    """The chain of a chat whose messages say ``texts``, a user's and an assistant's in turn."""
    roles = ("user", "assistant")
    return chain_of("/api/chat", {"model": "m", "messages": [
        {"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]})


def long(word: str) -> str:
    return " ".join([word] * 200)


@parametrized
def test_the_mirror_reads_from_cache_as_the_table_says(case):
    caches, last, found = PromptCaches(SLOTS), {}, []
    for now, step in enumerate(case.steps):
        chain = chain_of("/api/chat", {"model": "m", "messages": messages(case, step)})
        cached = caches.take(f"t{now}", chain, float(now))
        slot = caches.engine_index(caches.running_slots()[f"t{now}"])
        found.append((reads(cached, prompt_tokens(chain), last.get(step.who)), slot))
        last[step.who] = prompt_tokens(chain)
        caches.release(f"t{now}", float(now))
    assert found == expected(case)


def test_a_pick_says_what_a_prompt_reads_and_what_it_would_lose():
    caches = PromptCaches(1, ram_tokens=0)  # no RAM cache: a replaced prompt is gone
    a = chat(long("alpha"))
    caches.take("t1", a, 1.0)
    assert caches.pick(a) is None  # its one slot is busy
    caches.release("t1", 2.0)
    again = caches.pick(chat(long("alpha"), "ok", "and then?"))
    assert (again.slot, again.cached, again.lost) == (0, prompt_tokens(a), 0)
    other = caches.pick(chat(long("beta")))
    assert other.cached < 0.1 * prompt_tokens(a) and other.lost > 0.9 * prompt_tokens(a) and other.saves


def test_a_prompt_pushed_out_of_its_slot_is_held_in_ram_and_comes_back_from_it():
    caches = PromptCaches(1)
    a, b = chat(long("alpha")), chat(long("beta"))
    caches.take("t1", a, 1.0)
    caches.release("t1", 2.0)
    assert caches.pick(b).lost == 0  # saved to RAM before b takes the slot
    caches.take("t2", b, 3.0)
    caches.release("t2", 4.0)
    assert caches.holds(a) == prompt_tokens(a) and caches.conversations() == 2
    back = caches.pick(chat(long("alpha"), "ok", "go on"))
    assert back.restored is not None and back.cached == prompt_tokens(a)


def test_a_server_counts_each_conversation_it_holds_once_and_not_the_one_a_prompt_continues():
    caches = PromptCaches(2)
    a, b = chat(long("alpha")), chat(long("beta"))
    caches.take("t1", a, 1.0)
    caches.release("t1", 2.0)
    caches.take("t2", b, 3.0)  # the idle slot's alpha is saved to RAM too: held twice, one conversation
    caches.release("t2", 4.0)
    caches.take("t3", chat(long("alpha"), "ok", "go on"), 5.0)  # alpha's next turn: its earlier turn is held too
    assert len(caches.held()) + len(caches.ram) > 2 and caches.conversations() == 2
    assert caches.conversations(chat(long("beta"), "ok", "next")) == 1
    assert caches.conversations(chat(long("gamma"))) == 2
    # Another tenant's conversation counts, though the prompt continues it: it draws no probe that guessed it.
    assert caches.conversations(chat(long("beta"), "ok", "next"), tenant=("key", "probe")) == 2


def test_the_ram_cache_drops_its_oldest_prompts_when_full():
    a = chat(long("alpha"))
    caches = PromptCaches(1, ram_tokens=prompt_tokens(a) + 10)
    for now, word in enumerate(("alpha", "beta", "gamma")):
        caches.take(f"t{now}", chat(long(word)), float(now))
        caches.release(f"t{now}", float(now))
    assert caches.holds(a) < prompt_tokens(a)  # alpha went first
    assert caches.holds(chat(long("gamma"))) == prompt_tokens(chat(long("gamma")))


def test_a_similar_slot_is_taken_before_the_least_recently_used_and_another_tenants_read_is_foreign():
    caches = PromptCaches(2)
    shared = long("system")
    mine = caches.pick(chat(shared, "ok", "mine")).slot
    caches.take("t1", chat(shared, "ok", "mine"), 1.0, tenant=("team:1",))
    caches.release("t1", 5.0)  # the other slot was never used: the least recently used, but not similar
    pick = caches.pick(chat(shared, "ok", "theirs"), tenant=("team:2",))
    assert pick.slot == mine and pick.cached > 0.9 * prompt_tokens(chat(shared)) and pick.foreign
    assert not caches.pick(chat(shared, "ok", "theirs"), tenant=("team:1",)).foreign
    assert caches.holds(chat(shared), tenant=("team:2",)) == 0  # none of team 2's own


@pytest.mark.parametrize("slots, running, kept", [(4, 0, 4), (1, 0, 1), (1, 2, 2)])
def test_a_server_resized_keeps_its_slots_in_use(slots, running, kept):
    caches = PromptCaches(2)
    for n in range(running):
        caches.take(f"t{n}", chat(long(f"w{n}")), 1.0)
    caches.resize(slots, None)
    assert caches.slot_count == kept


def test_a_server_of_many_slots_makes_only_those_its_requests_used():
    caches = PromptCaches(100_000)  # as a server declared with a huge num_parallel, so that nothing queues
    for n in range(3):
        caches.take(f"t{n}", chat(long(f"w{n}")), 1.0)
    caches.release("t0", 2.0)
    picked = caches.pick(chat(long("fresh")))
    assert (caches.slot_count, len(caches.slots)) == (100_000, 3)
    assert picked.slot == 3 and not picked.lost  # a never-used slot still comes before the idle one of w0
    caches.take("t3", chat(long("fresh")), 3.0)
    assert len(caches.slots) == 4 and caches.holds(chat(long("w0"))) == prompt_tokens(chat(long("w0")))


def test_a_prompt_whose_ram_entry_the_slots_save_pushes_out_reads_nothing():
    """llama-server saves the slot's prompt before it loads one from RAM: in a RAM cache that holds one prompt, a
    conversation pushed out by another is itself pushed out of RAM when it comes back, and is read again whole."""
    a, b = chat(long("alpha")), chat(long("beta"))
    caches = PromptCaches(1, ram_tokens=prompt_tokens(a) + 10)
    for n, chain in enumerate((a, b)):
        caches.take(f"t{n}", chain, float(n))
        caches.release(f"t{n}", float(n) + 0.5)
    assert caches.holds(a) == prompt_tokens(a)  # in RAM, until b is saved
    back = caches.pick(a)
    assert back.restored is None and back.cached < 0.1 * prompt_tokens(a)
    assert caches.take("t2", a, 2.0) == back.cached


def test_a_pick_counts_as_lost_the_ram_entries_its_slots_save_pushes_out():
    """A RAM cache that holds one prompt: a new prompt on the used slot saves that slot's prompt and so drops the
    older one, held nowhere else; on a server with an empty slot it would lose nothing."""
    a, b, c = chat(long("alpha")), chat(long("beta")), chat(long("gamma"))
    for slots, lost in ((1, prompt_tokens(a) - c[0].tokens), (2, 0)):
        caches = PromptCaches(slots, ram_tokens=prompt_tokens(a) + 10)
        caches.take("t0", a, 0.0)
        caches.release("t0", 0.5)
        caches.take("t1", b, 1.0)  # on one slot, a is saved to RAM first; on two, b takes the empty one
        caches.release("t1", 1.5)
        assert caches.pick(c).lost == lost


def test_a_ram_entry_loaded_for_a_similar_prompt_and_overwritten_is_pushed_out():
    """llama-server loads the saved conversation that shares the most with a new prompt into the slot, then
    reads the new prompt over it: what that conversation held beyond the shared part is gone from the server."""
    system = long("rules")
    a, b, c = chat(system, "ok", long("alpha")), chat(long("beta")), chat(system, "ok", long("gamma"))
    caches = PromptCaches(1)
    for n, chain in enumerate((a, b)):
        caches.take(f"t{n}", chain, float(n))
        caches.release(f"t{n}", float(n) + 0.5)
    pick = caches.pick(c)
    assert pick.restored is not None and pick.cached > 0
    assert pick.pushed == prompt_tokens(a) - pick.cached > 0 and pick.lost == pick.pushed
    assert caches.pick(chat(system, "ok", long("alpha"), "next", "turn")).pushed == 0  # a's own next turn


def test_a_question_takes_a_never_used_slot_then_the_least_recently_used_idle_one():
    caches = PromptCaches(3)
    assert (caches.question_slot(), caches.question_slot(taken=0)) == (0, 1)
    for n, word in enumerate(("alpha", "beta", "gamma")):
        caches.take(f"t{n}", chat(long(word)), float(n))
    assert caches.question_slot() is None  # every slot busy
    for at, n in enumerate((2, 0, 1)):
        caches.release(f"t{n}", 10.0 + at)  # slot 2 freed first, then 0, then 1
    assert (caches.question_slot(), caches.question_slot(taken=2)) == (2, 0)
