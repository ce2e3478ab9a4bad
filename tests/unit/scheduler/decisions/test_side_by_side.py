"""A prompt read beside another on one runner: its time covers the other's reading, and is no miss for that."""

import pytest

from ollama_proxy.scheduler.decisions.prefix import prompt_tokens
from ollama_proxy.scheduler.decisions.servers import ServerSpec
from ollama_proxy.scheduler.decisions.side_by_side import Read, read_beside
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from tests.unit.scheduler.decisions.test_placement import _scheduler, _ticket, _turn

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
