"""The mirror of Ollama's slot choice: a continuation reuses its slot; otherwise the least recently used free
slot is taken, the longest prefix any slot holds copied into it first."""

from ollama_proxy.scheduler.caches import PromptCaches
from ollama_proxy.scheduler.prefix import chain_of, prompt_tokens


def _conversation(name: str, turns: int):
    return chain_of("/api/chat", {"messages": [{"role": "user", "content": f"{name} {i} " + "x" * 800}
                                               for i in range(turns)]})


def test_a_conversations_next_turn_reads_only_what_is_new_from_the_slot_that_holds_it():
    caches = PromptCaches()
    first, following = _conversation("a", 3), _conversation("a", 5)
    assert caches.take("t1", "alice", first, slots=2, now=0) == 0
    caches.release("t1", now=1)
    pick = caches.pick(following, slots=2)
    assert (pick.slot, pick.shared, pick.overwritten) == (0, prompt_tokens(first), None)


def test_a_third_conversation_overwrites_the_least_recently_used_slot():
    caches = PromptCaches()
    for n, name in enumerate("ab"):
        caches.take(name, name, _conversation(name, 3), slots=2, now=n)
        caches.release(name, now=n + 0.5)
    pick = caches.pick(_conversation("c", 3), slots=2)
    assert pick.slot == 0 and pick.shared == 0 and pick.overwritten.owner == "a"


def test_a_prefix_held_by_a_slot_in_use_is_copied_into_the_free_one():
    caches = PromptCaches()
    caches.take("t1", "alice", _conversation("a", 3), slots=2, now=0)  # still running
    branch = chain_of("/api/chat", {"messages": [{"role": "user", "content": f"a {i} " + "x" * 800}
                                                 for i in range(2)] + [{"role": "user", "content": "other"}]})
    pick = caches.pick(branch, slots=2)
    assert pick.slot == 1 and pick.shared == _conversation("a", 2)[-1].tokens
    caches.take("t2", "alice", branch, slots=2, now=1)
    assert caches.pick(branch, slots=2) is None  # both in use


def test_with_one_slot_the_slot_is_taken_whatever_it_holds():
    caches = PromptCaches()
    caches.take("t1", "alice", _conversation("a", 3), slots=1, now=0)
    caches.release("t1", now=1)
    pick = caches.pick(_conversation("b", 3), slots=1)
    assert pick.slot == 0 and pick.shared == 0 and pick.overwritten.owner == "alice"
