"""Two long prompts granted to one runner at once reach the engine in either order, and the slot each takes and what
it finds cached there depend on which comes first: the mirror predicted a hit that did not happen only for such
pairs (4 of 4 in the agents benchmark's runs). So they start a moment apart, in the order the mirror took them."""

from ollama_proxy.scheduler.decisions.core import Scheduler
from ollama_proxy.scheduler.decisions.placement import STARTS_APART
from ollama_proxy.scheduler.decisions.servers import ServerSpec
from tests.unit.scheduler.decisions.test_placement import _question, _scheduler, _ticket, _turn


def _one_server() -> Scheduler:
    return _scheduler(ServerSpec("gpu1", num_parallel=4))


def test_a_second_long_prompt_for_a_runner_starts_a_moment_after_the_first():
    s = _one_server()
    [first] = s.submit(_ticket("a", "a", _turn("a", 3), candidates=("gpu1",)), now=10.0)
    assert s.submit(_ticket("b", "b", _turn("b", 3), candidates=("gpu1",)), now=10.0) == []
    assert s.dispatch(now=10.0 + STARTS_APART / 2) == []
    [second] = s.dispatch(now=10.0 + STARTS_APART + 0.001)
    assert (first.ticket, second.ticket) == ("a", "b")


def test_a_question_is_not_held_after_a_long_prompt_nor_a_long_prompt_on_another_runner():
    s = _scheduler(ServerSpec("gpu1", num_parallel=4), ServerSpec("gpu2", num_parallel=4))
    [long] = s.submit(_ticket("a", "a", _turn("a", 3), candidates=("gpu1",)), now=10.0)
    [elsewhere] = s.submit(_ticket("b", "b", _turn("b", 3), candidates=("gpu2",)), now=10.0)
    assert [g.ticket for g in s.submit(_ticket("q", "q", _question("why?"), candidates=("gpu1",)), now=10.0)] == ["q"]
    assert (long.placement.server, elsewhere.placement.server) == ("gpu1", "gpu2")


def _a_conversation_and_a_question_ended(question_last: bool) -> Scheduler:
    """One server of two slots: agent a's conversation in one, a question's in the other; the one ended last is
    the most recently used."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=2))
    order = [("a1", "agent-a", _turn("a", 4)), ("q0", "bob", _question("hello there"))]
    for at, (id, who, prompt) in enumerate(order if question_last else order[::-1]):
        [_] = s.submit(_ticket(id, who, prompt, candidates=("gpu1",)), now=at)
        s.end(id, now=at + 0.5)
    return s


def test_a_question_is_held_a_moment_where_reaching_the_engine_first_it_would_take_a_conversations_slot():
    s = _a_conversation_and_a_question_ended(question_last=True)
    [_] = s.submit(_ticket("a2", "agent-a", _turn("a", 5), candidates=("gpu1",)), now=10.0)
    assert s.running["a2"].cached > 0  # its slot, the least recently used: a question there first would take it
    assert s.submit(_ticket("q1", "carol", _question("why?"), candidates=("gpu1",)), now=10.05) == []
    [grant] = s.dispatch(now=10.0 + STARTS_APART + 0.001)
    assert grant.ticket == "q1"


def test_a_question_is_not_held_where_it_would_take_another_slot_than_the_conversation_just_granted():
    s = _a_conversation_and_a_question_ended(question_last=False)
    [_] = s.submit(_ticket("a2", "agent-a", _turn("a", 5), candidates=("gpu1",)), now=10.0)
    assert [g.ticket for g in s.submit(_ticket("q1", "carol", _question("why?"), candidates=("gpu1",)),
                                       now=10.05)] == ["q1"]
