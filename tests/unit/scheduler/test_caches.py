"""The mirror of Ollama's slot choice. By default the free slot sharing the longest prefix, the first of equals;
with OLLAMA_MULTIUSER_CACHE a continuation reuses its slot, otherwise the least recently used free slot is
taken, the longest prefix any slot holds copied into it first."""

import pytest

from ollama_proxy.scheduler.caches import ARRIVAL_RACE, PromptCaches
from ollama_proxy.scheduler.prefix import chain_of, prompt_tokens

OPENING = chain_of("/api/chat", {"messages": [{"role": "user", "content": ""}]})[0].tokens  # the template's


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


def test_a_third_conversation_overwrites_the_least_recently_used_slot_of_a_multiuser_server():
    caches = PromptCaches()
    for n, name in enumerate("ab"):
        caches.take(name, name, _conversation(name, 3), slots=2, now=n, multiuser=True)
        caches.release(name, now=n + 0.5)
    caches.take("a2", "a", _conversation("a", 4), slots=2, now=2, multiuser=True)  # a's slot used last
    caches.release("a2", now=2.5)
    pick = caches.pick(_conversation("c", 3), slots=2, multiuser=True)
    assert pick.slot == 1 and pick.shared == OPENING and pick.overwritten.owner == "b"


def test_by_default_a_new_conversation_takes_the_first_free_slot_however_recently_used():
    caches = PromptCaches()
    caches.take("a1", "a", _conversation("a", 3), slots=2, now=0)
    caches.take("b1", "b", _conversation("b", 3), slots=2, now=1)
    assert [slot.owner for slot in caches.slots] == ["a", "b"]
    caches.release("b1", now=1.5)
    caches.release("a1", now=2)  # a's slot freed, and used, last
    pick = caches.pick(_conversation("c", 3), slots=2)
    assert pick.slot == 0 and pick.shared == OPENING and pick.overwritten.owner == "a"
    assert caches.pick(_conversation("b", 4), slots=2).overwritten is None  # b's next turn still finds its own


def test_by_default_a_new_conversation_takes_a_used_slot_before_an_empty_one():
    caches = PromptCaches()
    caches.take("a1", "a", _conversation("a", 3), slots=2, now=0)
    caches.release("a1", now=1)
    pick = caches.pick(_conversation("c", 3), slots=2)
    assert pick.slot == 0 and pick.overwritten.owner == "a"  # the prompt template's first tokens match
    assert caches.pick(_conversation("c", 3), slots=2, multiuser=True).slot == 1


def test_a_slot_learns_how_long_its_conversation_took_to_come_back():
    caches = PromptCaches()
    caches.take("a1", "alice", _conversation("a", 3), slots=2, now=0)
    caches.release("a1", now=4)
    caches.take("a2", "alice", _conversation("a", 4), slots=2, now=7, asked=5.5)  # asked 1.5 s after, waited
    assert caches.slots[0].came_back == 1.5
    caches.release("a2", now=9)
    caches.take("c1", "carol", _conversation("c", 3), slots=2, now=10)  # another conversation: nothing learned
    assert caches.slots[1].came_back is None


def test_a_multiuser_server_copies_a_prefix_held_by_a_slot_in_use_into_the_free_one():
    caches = PromptCaches()
    caches.take("t1", "alice", _conversation("a", 3), slots=2, now=0)  # still running
    branch = chain_of("/api/chat", {"messages": [{"role": "user", "content": f"a {i} " + "x" * 800}
                                                 for i in range(2)] + [{"role": "user", "content": "other"}]})
    for multiuser in (False, True):
        pick = caches.pick(branch, slots=2, multiuser=multiuser)
        assert pick.slot == 1 and pick.shared == (_conversation("a", 2)[-1].tokens if multiuser else 0)
    caches.take("t2", "alice", branch, slots=2, now=1)
    assert caches.pick(branch, slots=2) is None  # both in use


def test_with_one_slot_the_slot_is_taken_whatever_it_holds():
    caches = PromptCaches()
    caches.take("t1", "alice", _conversation("a", 3), slots=1, now=0)
    caches.release("t1", now=1)
    pick = caches.pick(_conversation("b", 3), slots=1)
    assert pick.slot == 0 and pick.shared == OPENING and pick.overwritten.owner == "alice"


def test_by_default_a_new_conversation_takes_a_slot_whose_prompt_opens_alike():
    caches = PromptCaches()
    agent = chain_of("/api/chat", {"messages": [{"role": "system", "content": "you code " * 500},
                                                {"role": "user", "content": "fix it"}]})
    caches.take("q1", "person", _conversation("q", 1), slots=2, now=0)
    caches.take("a1", "agent", agent, slots=2, now=0)
    for ticket in ("q1", "a1"):
        caches.release(ticket, now=1)
    other_agent = chain_of("/api/chat", {"messages": [{"role": "system", "content": "you test " * 500}]})
    assert caches.pick(other_agent, slots=2).overwritten.owner == "agent"  # both open with a system message
    assert caches.pick(_conversation("r", 1), slots=2).overwritten.owner == "person"


def _two_conversations_running(caches: PromptCaches) -> None:
    """Conversations a and b held and running on slots 0 and 1, as Ollama gave them."""
    for name in "ab":
        caches.take(f"{name}1", name, _conversation(name, 3), slots=2, now=0)
        caches.release(f"{name}1", now=1)
        caches.take(f"{name}2", name, _conversation(name, 4), slots=2, now=1.3)


def test_a_slot_freed_as_a_request_is_given_another_is_the_one_it_found_first_free():
    """A question given b's slot the moment b's turn ended; a's ended too as the question was on its way.

    Arriving, it found both free and took the first, as Ollama does: a's conversation is the one it overwrote.
    """
    caches = PromptCaches()
    _two_conversations_running(caches)
    caches.release("b2", now=2.0)
    caches.take("q", "carol", _conversation("q", 1), slots=2, now=2.0)
    assert caches.slots[1].ticket == "q"
    caches.release("a2", now=2.0 + ARRIVAL_RACE / 2)
    assert [slot.ticket for slot in caches.slots] == ["q", None]
    assert [slot.owner for slot in caches.slots] == ["carol", "b"]
    assert caches.pick(_conversation("b", 5), slots=2).overwritten is None  # b's next turn finds its own
    assert caches.pick(_conversation("a", 5), slots=2).overwritten.owner == "b"  # a's is gone
    caches.release("q", now=3)
    assert (caches.slots[0].owner, caches.slots[0].ticket, caches.slots[0].ended) == ("carol", None, 3)


def test_a_slot_freed_well_after_a_request_was_given_another_changes_nothing():
    caches = PromptCaches()
    _two_conversations_running(caches)
    caches.release("b2", now=2.0)
    caches.take("q", "carol", _conversation("q", 1), slots=2, now=2.0)
    caches.release("a2", now=2.0 + 2 * ARRIVAL_RACE)  # the question had reached Ollama and taken b's slot
    assert [slot.owner for slot in caches.slots] == ["a", "carol"]


def test_a_conversation_given_its_own_slot_keeps_it_whatever_frees_beside_it():
    caches = PromptCaches()
    _two_conversations_running(caches)
    caches.release("b2", now=2.0)
    assert caches.take("b3", "b", _conversation("b", 5), slots=2, now=2.3, asked=2.3) > 0
    caches.release("a2", now=2.31)
    assert [(slot.owner, slot.ticket) for slot in caches.slots] == [("a", None), ("b", "b3")]
    assert caches.slots[1].came_back == pytest.approx(0.3)
