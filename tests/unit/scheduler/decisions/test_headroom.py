"""The slots kept for people's questions: a long prompt is held rather than read ahead of the next question."""

from ollama_proxy.scheduler.decisions.prefix import prompt_tokens
from ollama_proxy.scheduler.decisions.servers import ServerSpec
from tests.unit.scheduler.decisions.test_placement import _question, _scheduler, _ticket, _turn

RATE = 1000.0  # tokens a second the server reads at


def _gpu2_busy_and_gpu1_holding_a(question_first: bool, rate: float = RATE):
    """Two servers of two slots; people ask; gpu2 runs two conversations, read long ago; gpu1 holds agent a's, in
    llama-server's slot 0 if a question came before it (a server takes its last never-used slot first), else in 1."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=2), ServerSpec("gpu2", num_parallel=2), default_prefill_rate=rate)
    first, second = ("q0", "a1") if question_first else ("a1", "q0")
    prompts = {"q0": ("bob", _question("hello there")), "a1": ("agent-a", _turn("a", 4))}
    for now, id in ((0, first), (0.5, second)):
        [_] = s.submit(_ticket(id, prompts[id][0], prompts[id][1], candidates=("gpu1",)), now=now)
    s.end("q0", now=1)
    s.end("a1", now=2)
    for at, name in enumerate("bc", start=1):
        [_] = s.submit(_ticket(f"{name}1", f"agent-{name}", _turn(name, 2), candidates=("gpu2",)), now=at)
    return s


def test_a_prompt_read_whole_waits_rather_than_read_ahead_of_the_only_slot_left_for_questions():
    s = _gpu2_busy_and_gpu1_holding_a(question_first=False)
    # d's 18,000 tokens would take gpu1's least recently used slot, 0, for 18 s, ahead of slot 1: the next question's.
    assert s.submit(_ticket("d1", "agent-d", _turn("d", 16)), now=20) == []
    [grant] = s.end("b1", now=21)  # a slot free on gpu2 with nothing read below it: a question's; d may start
    assert grant.ticket == "d1"


def test_a_prompt_held_for_questions_waits_no_longer_than_it_would_make_a_question_wait():
    s = _gpu2_busy_and_gpu1_holding_a(question_first=False)
    assert s.submit(_ticket("d1", "agent-d", _turn("d", 16)), now=10) == []
    assert s.dispatch(now=27) == []
    [grant] = s.dispatch(now=10 + prompt_tokens(_turn("d", 16)) / RATE)  # as long as a question would wait for it
    assert grant.ticket == "d1"


def test_a_prompt_that_waited_for_any_slot_is_still_held_as_long_once_one_frees_ahead_of_questions():
    s = _gpu2_busy_and_gpu1_holding_a(question_first=False)
    for name in "xy":  # two people take gpu1's slots: x the least recently used, 0; y slot 1
        [_] = s.submit(_ticket(f"{name}1", name, _question(f"{name} asks"), candidates=("gpu1",)), now=3)
    assert s.submit(_ticket("d1", "agent-d", _turn("d", 16)), now=4) == []  # no slot free anywhere
    s.end("x1", now=14.9)
    # d1 waited 11 s for any slot, none of it for a question. Now its 18,000 tokens would take slot 0, read ahead of
    # slot 1, the next question's: held from here, for as long as it would make that question wait.
    assert s.end("y1", now=15) == []
    assert s.dispatch(now=30) == []
    [grant] = s.dispatch(now=15 + prompt_tokens(_turn("d", 16)) / RATE)
    assert grant.ticket == "d1"


def test_a_turn_read_mostly_from_cache_is_not_held_for_questions():
    s = _gpu2_busy_and_gpu1_holding_a(question_first=True, rate=4 * RATE)
    # a's next turn, in slot 0, reads its 1,000 new tokens in a quarter of a second: the next question, in slot 1,
    # waits no longer.
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 5)), now=20)
    assert grant.placement.server == "gpu1"
