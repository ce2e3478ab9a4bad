"""A prompt read beside another on one runner: its time covers the other's reading, and is no miss for that."""

import pytest

from ollama_proxy.scheduler.decisions.prefix import prompt_tokens
from ollama_proxy.scheduler.decisions.servers import ServerSpec
from ollama_proxy.scheduler.decisions.side_by_side import Read, read_beside, reading_left
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from tests.unit.scheduler.decisions.test_placement import _question, _scheduler, _ticket, _turn

RATE = 1000.0  # tokens a second the server reads at, learned from the first answer


def test_what_other_slots_read_is_counted_over_each_ones_own_time():
    reads = [Read("mine", 6.0, 500), Read("long", 5.0, 22_000), Read("done", 0.0, 2_000), Read("later", 30.0, 900)]
    # "long" reads from 5 s to 27 s: 21 s of it in mine (6 s to 28 s); "done" ended at 2 s; "later" begins past it.
    assert read_beside(reads, "mine", 6.0, 22.0, RATE) == pytest.approx(21_000)
    assert read_beside(reads, "mine", 6.0, 0.5, RATE) == pytest.approx(500)


def _one_slot_pair():
    """One server of two slots that has read agent a's conversation (at RATE) and holds it."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=2))
    first = prompt_tokens(_turn("a", 4))
    [_] = s.submit(_ticket("a1", "agent-a", _turn("a", 4), candidates=("gpu1",)), now=0)
    s.end("a1", now=1, read=PromptRead(first, None, first / RATE))
    return s


def test_a_hit_read_beside_a_long_prompt_is_confirmed_though_its_time_covers_the_other():
    s = _one_slot_pair()
    s.submit(_ticket("b1", "agent-b", _turn("b", 20), candidates=("gpu1",)), now=5)  # 22,000 tokens, cold
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 5), candidates=("gpu1",)), now=6)
    assert grant.placement.server == "gpu1" and s.running["a2"].cached == prompt_tokens(_turn("a", 4))
    new = prompt_tokens(_turn("a", 5)) - prompt_tokens(_turn("a", 4))
    # llama-server read b1's batches first: a2's few tokens came out only when b1's were done, 21 s later.
    s.end("a2", now=28, read=PromptRead(prompt_tokens(_turn("a", 5)), None, 21.0 + new / RATE))
    [report] = s.hits.report()
    assert (report["predicted"], report["confirmed"]) == (1, 1)
    [grant] = s.submit(_ticket("a3", "agent-a", _turn("a", 6), candidates=("gpu1",)), now=29)
    assert s.running["a3"].cached == prompt_tokens(_turn("a", 5))  # the mirror still holds the conversation


def test_a_hit_read_alone_that_took_as_long_was_a_miss():
    s = _one_slot_pair()
    s.submit(_ticket("a2", "agent-a", _turn("a", 5), candidates=("gpu1",)), now=6)
    new = prompt_tokens(_turn("a", 5)) - prompt_tokens(_turn("a", 4))
    s.end("a2", now=28, read=PromptRead(prompt_tokens(_turn("a", 5)), None, 21.0 + new / RATE))
    [report] = s.hits.report()
    assert (report["predicted"], report["confirmed"]) == (1, 0)


def test_the_lowest_slot_is_read_first_and_a_later_one_below_goes_ahead_of_what_is_left():
    # slot 1 starts 10,000 tokens at 0 s; slot 0 starts 4,000 at 2 s and takes every batch until 6 s.
    reads = [(1, 0.0, 10_000), (0, 2.0, 4_000)]
    assert reading_left(reads, 2.0, RATE) == {1: pytest.approx(8_000), 0: pytest.approx(4_000)}
    assert reading_left(reads, 5.0, RATE) == {1: pytest.approx(8_000), 0: pytest.approx(1_000)}
    assert reading_left(reads, 9.0, RATE) == {1: pytest.approx(5_000)}
    assert reading_left(reads, 20.0, RATE) == {}


def test_a_read_that_has_not_begun_is_left_whole():
    assert reading_left([(0, 7.0, 3_000)], 5.0, RATE) == {0: pytest.approx(3_000)}


def _reading_a_long_prompt():
    """gpu1 (three slots, two of them used before) begins at 5 s to read agent b's 22,000-token first turn in the
    one never used, llama-server's slot 0 (it takes its last never-used slot first), which it reads before the
    others; gpu2 (two slots) runs a question it has long read."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=3), ServerSpec("gpu2", num_parallel=2), default_prefill_rate=RATE)
    [_] = s.submit(_ticket("q0", "bob", _question("hello there"), candidates=("gpu2",)), now=0)
    for name in "xy":
        [_] = s.submit(_ticket(f"{name}0", name, _question(f"{name} asks"), candidates=("gpu1",)), now=1)
    for name in "xy":
        s.end(f"{name}0", now=2)
    [_] = s.submit(_ticket("b1", "agent-b", _turn("b", 20), candidates=("gpu1",)), now=5)
    assert s.servers["gpu1"].runners["m"].caches.engine_index(s.servers["gpu1"].runners["m"].caches.running_slots()[
        "b1"]) == 0
    return s


def test_a_question_goes_where_no_long_prompt_is_read_ahead_of_it():
    s = _reading_a_long_prompt()
    # gpu1 has more free slots, but there the question's few tokens would wait 21 s for b1's.
    [grant] = s.submit(_ticket("q1", "carol", _question("what time is it?")), now=6)
    assert grant.placement.server == "gpu2"


def test_a_question_is_read_at_once_though_its_slot_holds_a_conversation_it_pushes_out():
    """A person does not wait for a cache: gpu2 keeps no prompts in RAM (``prompt_cache_mib: 0``), so agent c's next
    turn will read its conversation again whole there; on gpu1, the question's few tokens would wait 21 s for b1's."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=3), ServerSpec("gpu2", num_parallel=2, prompt_cache_mib=0),
                   default_prefill_rate=RATE)
    [_] = s.submit(_ticket("c1", "agent-c", _turn("c", 4), candidates=("gpu2",)), now=0)
    s.end("c1", now=1)
    [_] = s.submit(_ticket("q0", "bob", _question("hello there"), candidates=("gpu2",)), now=1.5)  # a slot never used
    for name in "xy":
        [_] = s.submit(_ticket(f"{name}0", name, _question(f"{name} asks"), candidates=("gpu1",)), now=1)
    for name in "xy":
        s.end(f"{name}0", now=2)
    [_] = s.submit(_ticket("b1", "agent-b", _turn("b", 20), candidates=("gpu1",)), now=5)
    [grant] = s.submit(_ticket("q1", "carol", _question("what time is it?")), now=6)
    assert grant.placement.server == "gpu2"
    assert s.servers["gpu2"].runners["m"].caches.holds(_turn("c", 4), ()) == 0  # c's conversation is gone from it


def _gpu2_full_of_questions():
    """gpu1 reads b1 from 5 s to 27 s in its slot 0; gpu2's two slots run questions expected to end by 10.5 s."""
    s = _reading_a_long_prompt()
    [_] = s.submit(_ticket("q2", "dave", _question("a quick one"), candidates=("gpu2",)), now=5.5)
    return s


def test_a_question_waits_for_a_slot_that_frees_sooner_than_the_reading_ahead_of_its_free_one():
    s = _gpu2_full_of_questions()
    assert s.submit(_ticket("q1", "carol", _question("what time is it?")), now=6) == []  # 21 s behind b1 on gpu1
    [grant] = s.end("q0", now=7)
    assert (grant.ticket, grant.placement.server) == ("q1", "gpu2")


def test_a_question_waiting_for_a_busy_server_goes_once_the_reading_ahead_is_nearly_done():
    s = _gpu2_full_of_questions()
    assert s.submit(_ticket("q1", "carol", _question("what time is it?")), now=6) == []
    assert s.dispatch(now=12) == []  # q2 has just overrun: it is expected to end within 1.5 s, b1 in 15 s
    # Overrunning, a turn is expected to run on as long as it overran: by now, q2 for 16 s more, b1 for half a second.
    [grant] = s.dispatch(now=26.5)
    assert (grant.ticket, grant.placement.server) == ("q1", "gpu1")


def test_a_turn_read_behind_another_slot_is_expected_to_hold_its_slot_that_much_longer():
    s = _reading_a_long_prompt()
    s.estimates.generated("m", "agent-a", 2.0)  # its answers take 2 s beyond their prompts' reading
    [grant] = s.submit(_ticket("a1", "agent-a", _turn("a", 4), candidates=("gpu1",)), now=6)
    behind = prompt_tokens(_turn("b", 20)) / RATE - 1.0  # b1 has read for a second
    assert s.running["a1"].expected == pytest.approx(behind + prompt_tokens(_turn("a", 4)) / RATE + 2.0)
