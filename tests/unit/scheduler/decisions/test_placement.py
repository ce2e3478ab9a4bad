"""Where a prompt goes: the server whose llama-server holds it (slot or RAM), never held back while a slot that
costs no more is idle; what each answer says it read bears the mirror out or corrects it."""

import pytest

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.estimates import Estimates
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.prefix import chain_of, prompt_tokens
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from tests.unit.scheduler.decisions.test_core import _on_loan

SERVERS = ("gpu1", "gpu2")
DEFAULT_BOUNDS = Bounds(load_gather=0)  # a first load at once


def _scheduler(*specs: ServerSpec, bounds: Bounds = DEFAULT_BOUNDS, **estimates) -> Scheduler:
    scheduler = Scheduler(specs or [ServerSpec(n, num_parallel=2) for n in SERVERS], bounds, Estimates(**estimates))
    for server in scheduler.servers.values():
        server.warm("m", Loaded({}))
    return scheduler


def _turn(name: str, turns: int, system: str | None = None):
    """An agent's prompt: a system text of 2,000 tokens (its own, or ``system``), then turns of 1,000."""
    text = system if system is not None else f"{name} " + "s" * 8000
    asked = [{"role": "user", "content": f"{name} {i} " + "x" * 4000} for i in range(turns)]
    return chain_of("/api/chat", {"messages": [{"role": "system", "content": text}, *asked]})


def _question(text: str):
    return chain_of("/api/chat", {"messages": [{"role": "user", "content": text}]})


def _ticket(id: str, who: str, prefix=(), **kw) -> Ticket:
    return Ticket(id, Share(who), "m", kw.pop("candidates", SERVERS), prefix=prefix, **kw)


def _served(s: Scheduler, id: str, who: str, prefix, now: float, read: PromptRead | None = None) -> str:
    """Submit, see it granted at once, end it a second later; return the server it ran on."""
    [grant] = s.submit(_ticket(id, who, prefix), now)
    s.end(id, now + 1, read=read)
    return grant.placement.server


def test_a_conversations_next_turn_goes_to_the_server_that_holds_its_prompt():
    s = _scheduler()
    first = _served(s, "a1", "agent-a", _turn("a", 4), now=0)
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 6)), now=6)
    assert grant.placement.server == first and s.running["a2"].cached == prompt_tokens(_turn("a", 4))


def test_one_keys_conversations_spread_over_the_servers_and_each_comes_back_to_its_own():
    s = _scheduler()
    servers = [_served(s, f"{name}1", "alice", _turn(name, 2), now=n) for n, name in enumerate("ab")]
    assert sorted(servers) == ["gpu1", "gpu2"]  # the second conversation is no cheaper on the first's server
    for n, name in enumerate("ab"):
        assert _served(s, f"{name}2", "alice", _turn(name, 3), now=5 + n) == servers[n]


def test_new_conversations_spread_over_servers_whose_learned_rates_differ_by_noise():
    """Two like servers, one measured a fifth slower: new conversations still go to both, not all to one."""
    s = _scheduler()
    s.estimates.prefilled("m", "gpu1", 1000, 1.0)
    s.estimates.prefilled("m", "gpu2", 800, 1.0)
    home = [_served(s, f"{name}1", "alice", _turn(name, 1), now=n) for n, name in enumerate("abcde")]
    assert set(home) == {"gpu1", "gpu2"}, home


def test_a_server_twice_as_fast_takes_a_new_conversation_while_it_has_a_free_slot():
    s = _scheduler()
    s.estimates.prefilled("m", "gpu1", 1000, 1.0)
    s.estimates.prefilled("m", "gpu2", 500, 1.0)
    assert _served(s, "a1", "alice", _turn("a", 1), now=0) == "gpu1"


def test_a_conversation_pushed_out_of_its_slot_into_ram_still_goes_back_to_that_server():
    s = _scheduler()
    home = {name: _served(s, f"{name}1", f"agent-{name}", _turn(name, 2), now=n) for n, name in enumerate("abcde")}
    assert sorted(home.values()) == ["gpu1", "gpu1", "gpu1", "gpu2", "gpu2"]  # five conversations, four slots
    for n, name in enumerate("abcde"):
        [grant] = s.submit(_ticket(f"{name}2", f"agent-{name}", _turn(name, 3)), now=10 + n)
        assert grant.placement.server == home[name], name
        assert s.running[f"{name}2"].cached == prompt_tokens(_turn(name, 2)), name
        s.end(f"{name}2", now=10.5 + n)


def test_a_new_prompt_is_never_held_back_while_a_slot_is_idle():
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1))
    for n, name in enumerate("ab"):
        _served(s, f"{name}1", f"agent-{name}", _turn(name, 4), now=n)
    # Both slots hold another's conversation, which llama-server saves to RAM when a new prompt takes its slot.
    assert [g.ticket for g in s.submit(_ticket("c1", "agent-c", _turn("c", 4)), now=3)] == ["c1"]


def _busy_home(prefill_rate: float, **bounds) -> tuple[Scheduler, str]:
    """Agent a's conversation on its server, which is now busy with b's; the other server idle."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1),
                   bounds=Bounds(**bounds), default_slot_seconds=2.0, default_prefill_rate=prefill_rate)
    home = _served(s, "a1", "agent-a", _turn("a", 4), now=0)
    b1 = _ticket("b1", "agent-b", _turn("b", 1), candidates=(home,))
    assert [g.ticket for g in s.submit(b1, now=2)] == ["b1"]  # expected to hold the slot 2 s
    return s, home


def test_a_turn_waits_for_its_busy_server_when_reading_it_all_again_elsewhere_costs_more():
    s, home = _busy_home(prefill_rate=1000.0)  # the whole conversation again elsewhere: 6 s
    assert s.submit(_ticket("a2", "agent-a", _turn("a", 5)), now=2.5) == []
    [grant] = s.end("b1", now=3)
    assert (grant.ticket, grant.placement.server) == ("a2", home)


def test_a_turn_goes_to_an_idle_server_when_reading_it_all_again_is_quicker_than_the_wait():
    s, home = _busy_home(prefill_rate=100_000.0)  # the whole conversation again elsewhere: 0.06 s
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 5)), now=2.5)
    assert grant.placement.server != home


def test_a_turn_waits_for_its_server_at_most_prefix_hold():
    s, home = _busy_home(prefill_rate=1000.0, prefix_hold=3.0)
    assert s.submit(_ticket("a2", "agent-a", _turn("a", 5)), now=2.5) == []
    [grant] = s.dispatch(now=5.5)  # waited 3 s: it goes to the idle server
    assert grant.placement.server != home
    assert _scheduler(bounds=Bounds(prefix_hold=0.0)).bounds.prefix_hold == 0.0


def test_long_prompts_leave_questions_a_free_slot():
    # Prompts read at once: none read ahead of a question in another slot (side_by_side's tests).
    s = _scheduler(ServerSpec("gpu1", num_parallel=2), ServerSpec("gpu2", num_parallel=1), default_prefill_rate=1e6)
    _served(s, "q0", "person", _question("hello"), now=0)  # questions come for the model
    for name in "ab":
        s.submit(_ticket(f"{name}1", f"agent-{name}", _turn(name, 4)), now=1)
    assert sorted(s.running) == ["a1", "b1"]
    assert s.submit(_ticket("c1", "agent-c", _turn("c", 4)), now=1.5) == []  # the last free slot
    assert [g.ticket for g in s.submit(_ticket("q1", "person", _question("and now?")), now=2)] == ["q1"]


def test_with_fewer_than_three_slots_no_slot_is_kept_for_questions():
    s = _scheduler(ServerSpec("gpu1", num_parallel=2))
    _served(s, "q0", "person", _question("hello"), now=0)
    for now, name in enumerate("ab", start=1):
        granted = s.submit(_ticket(f"{name}1", f"agent-{name}", _turn(name, 4)), now=now)
        assert [g.ticket for g in granted] == [f"{name}1"]


def test_what_answers_say_they_read_teaches_the_prefill_rate_of_re_read_tokens_and_the_token_scale():
    s = _scheduler()
    estimate = prompt_tokens(_turn("a", 4))
    _served(s, "a1", "agent-a", _turn("a", 4), now=0, read=PromptRead(2 * estimate, 0, 4.0))
    assert s.estimates.scale("m") == 2.0  # Ollama counts twice the proxy's estimate
    server = next(name for name in SERVERS if s.servers[name].runners["m"].caches.held())
    assert s.estimates.prefill_seconds("m", server, estimate) == pytest.approx(4.0)
    # A turn read mostly from cache: only what it read again teaches the rate (2,000 tokens in 1 s).
    _served(s, "a2", "agent-a", _turn("a", 5), now=5, read=PromptRead(2 * estimate + 2000, 2 * estimate, 1.0))
    assert s.estimates.prefill_seconds("m", server, 1000) == pytest.approx(1.0, rel=0.3)


def test_a_predicted_hit_the_answer_does_not_bear_out_corrects_the_mirror_and_is_reported():
    s = _scheduler(ServerSpec("gpu1", num_parallel=1))
    for n, name in enumerate("ab"):  # a is pushed into RAM by b
        _served(s, f"{name}1", f"agent-{name}", _turn(name, 2), now=n,
                read=PromptRead(prompt_tokens(_turn(name, 2)), 0, 1.0))
    caches = s.servers["gpu1"].runners["m"].caches
    assert caches.holds(_turn("a", 3)) == prompt_tokens(_turn("a", 2))
    tokens = prompt_tokens(_turn("a", 3))
    _served(s, "a2", "agent-a", _turn("a", 3), now=5, read=PromptRead(tokens, 10, 3.0))  # the server had lost it
    [report] = s.hits.report()
    assert (report["predicted"], report["confirmed"]) == (1, 0) and report["reliability"] < 1.0
    assert report["predicted_tokens"] >= prompt_tokens(_turn("a", 2)) and report["confirmed_tokens"] == 10
    assert caches.holds(_turn("b", 3)) == prompt_tokens(_turn("b", 2))  # b's is another prompt: still held


def test_a_hit_confirmed_keeps_full_trust_and_a_surprise_is_counted():
    s = _scheduler(ServerSpec("gpu1", num_parallel=1))
    tokens = prompt_tokens(_turn("a", 2))
    _served(s, "a1", "agent-a", _turn("a", 2), now=0, read=PromptRead(tokens, tokens - 1, 0.1))  # unforeseen
    _served(s, "a2", "agent-a", _turn("a", 3), now=5, read=PromptRead(prompt_tokens(_turn("a", 3)), tokens, 1.0))
    [report] = s.hits.report()
    assert (report["predicted"], report["confirmed"], report["surprises"], report["reliability"]) == (1, 1, 1, 1.0)


def test_before_ollama_0_33_what_was_read_again_is_told_by_the_time_it_took():
    s = _scheduler(ServerSpec("gpu1", num_parallel=1))
    first = prompt_tokens(_turn("a", 2))
    _served(s, "a1", "agent-a", _turn("a", 2), now=0, read=PromptRead(first, None, first / 1000))  # cold: the rate
    second = prompt_tokens(_turn("a", 3))
    _served(s, "a2", "agent-a", _turn("a", 3), now=5, read=PromptRead(second, None, (second - first) / 1000))
    [report] = s.hits.report()
    assert (report["predicted"], report["confirmed"]) == (1, 1)
    assert report["confirmed_tokens"] == pytest.approx(first, abs=2)


def test_an_embedding_loading_its_model_is_counted_on_one_slot():
    s = Scheduler([ServerSpec("gpu1", num_parallel=4)], DEFAULT_BOUNDS)
    s.submit(Ticket("e1", Share("a"), "embed", ("gpu1",), embeds=True), now=0)
    assert s.submit(Ticket("e2", Share("a"), "embed", ("gpu1",), embeds=True), now=0) == []  # Ollama runs one
    assert s.servers["gpu1"].slots_of("embed") == 1


def test_a_turn_that_comes_before_the_last_ones_end_reached_the_scheduler_still_goes_to_its_slot():
    """The end of a1 is on its way from another worker when a2, which holds a1's answer, is submitted."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1))
    [first] = s.submit(_ticket("a1", "agent-a", _turn("a", 4)), now=0)
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 5)), now=5)
    assert grant.placement.server == first.placement.server and "a1" not in s.running
    assert s.running["a2"].cached == prompt_tokens(_turn("a", 4))
    tokens = prompt_tokens(_turn("a", 4))
    assert s.end("a1", now=5.1, read=PromptRead(tokens, 0, 1.0)) == []  # its end, late: what it read still counts
    assert s.estimates.prefill_seconds("m", first.placement.server, tokens) == 1.0
    # A prompt that only shares the start of a running one (another question after the same system text) ends nothing.
    s.submit(_ticket("b1", "agent-b", _turn("a", 4)[:2]), now=6)
    assert "a2" in s.running


def test_the_wait_for_a_busy_server_is_its_running_requests_reading_and_answering_as_learned():
    """b1 reads a long prompt cold on a's server (22 s at the learned rate): a2 reads its own elsewhere instead."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1),
                   default_prefill_rate=1000.0, default_slot_seconds=1.0)
    home = _served(s, "a1", "agent-a", _turn("a", 4), now=0,
                   read=PromptRead(prompt_tokens(_turn("a", 4)), 0, prompt_tokens(_turn("a", 4)) / 1000))
    s.estimates.generated("m", "agent-b", 0.5)
    s.submit(_ticket("b1", "agent-b", _turn("b", 20), candidates=(home,)), now=2)  # 22,000 tokens to read
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 5)), now=2.1)
    assert grant.placement.server != home  # reading a's 7,000 elsewhere (7 s, twice: 14) beats waiting 22 s
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1),
                   default_prefill_rate=1000.0, default_slot_seconds=30.0)
    home = _served(s, "a1", "agent-a", _turn("a", 4), now=0)
    s.estimates.generated("m", "agent-b", 0.5)
    s.submit(_ticket("b1", "agent-b", _turn("b", 1), candidates=(home,)), now=2)  # 2,000 tokens: 2.5 s in all
    assert s.submit(_ticket("a2", "agent-a", _turn("a", 5)), now=2.1) == []  # though its slot-time says 30 s


def test_a_wait_that_runs_long_ends_once_it_has_cost_what_moving_would():
    """b1 on a's server runs far past what was expected (1 s, as a1 took, from 2 s): a2 waits until its wait so
    far and the wait still expected (as long again as b1 overran) cost twice what home saves it: 2 x (7 - 1 s)."""
    s, home = _busy_home(prefill_rate=1000.0, prefix_hold=60.0)  # a2 read elsewhere: 7 s; at home: 1 s
    assert s.submit(_ticket("a2", "agent-a", _turn("a", 5)), now=2.5) == []
    assert s.dispatch(now=8.5) == []  # waited 6 s, b1 overran by 5.5 s: 11.5 s < 12 s
    [grant] = s.dispatch(now=9.0)  # 6.5 s and 6 s
    assert grant.placement.server != home


def test_a_probe_is_not_drawn_to_the_server_holding_another_tenants_prompt():
    s = _scheduler()
    victim = _served(s, "b1", "bob", _turn("b", 2), now=0)
    [grant] = s.submit(_ticket("m1", "mallory", _turn("b", 3)), now=5)  # bob's conversation, guessed, and more
    assert grant.placement.server != victim  # to the server holding fewer prompts, as a new conversation would
    shared = _scheduler(bounds=Bounds(prompt_cache_isolation="off"))
    victim = _served(shared, "b1", "bob", _turn("b", 2), now=0)
    [grant] = shared.submit(_ticket("m1", "mallory", _turn("b", 3)), now=5)
    assert grant.placement.server == victim  # with isolation off, anyone's cached prompt draws it


def test_a_probe_goes_where_it_reads_no_other_tenants_prompt_even_to_the_server_holding_more():
    s = _scheduler()
    victim = _served(s, "b1", "bob", _turn("b", 2), now=0)
    other = "gpu2" if victim == "gpu1" else "gpu1"
    # The other server holds more prompts: a new conversation would go to the victim's.
    for now, name in ((1, "c"), (3, "d")):
        s.submit(_ticket(f"{name}1", f"agent-{name}", _turn(name, 1), candidates=(other,)), now=now)
        s.end(f"{name}1", now=now + 1)
    [grant] = s.submit(_ticket("m1", "mallory", _turn("b", 3)), now=5)
    assert grant.placement.server == other and s.running["m1"].cached < prompt_tokens(_turn("b", 2))


def test_a_team_shares_its_cached_prompts_and_isolation_by_key_does_not():
    """carol's conversation opens with the system text alice's holds; alice's is more than twice as long, so
    llama-server saves it to RAM before carol's takes its slot: nothing of alice's is lost."""
    system = "the team's house rules " + "r" * 8000
    for isolation, drawn in (("team", True), ("key", False)):
        s = _scheduler(bounds=Bounds(prompt_cache_isolation=isolation))
        [first] = s.submit(Ticket("a1", Share("alice", team="research"), "m", SERVERS,
                                  prefix=_turn("a", 3, system)), now=0)
        s.end("a1", now=1)
        [grant] = s.submit(Ticket("c1", Share("carol", team="research"), "m", SERVERS,
                                  prefix=_turn("c", 1, system)), now=5)
        assert (grant.placement.server == first.placement.server) is drawn, isolation


@pytest.mark.parametrize("who", ["carol", "alice"])
def test_a_conversation_after_the_same_system_text_takes_an_empty_slot_before_pushing_one_out(who):
    """llama-server would give c1 the idle slot of a1, which shares the system text, over an empty one, and
    drop a1's turn unsaved (c1 keeps more than half of it): the two would take the slot from each other turn
    after turn. The other server's empty slot costs the system text once. With every server holding such a
    conversation, one is pushed out: there is no other way."""
    system = "the team's house rules " + "r" * 8000
    s = _scheduler()
    shares = {name: Share(name, team="research") for name in ("alice", "carol")}
    home = _served_by(s, "a1", shares["alice"], _turn("a", 1, system), now=0)
    other = _served_by(s, "c1", shares[who], _turn("c", 1, system), now=2)
    assert other != home
    third = _served_by(s, "d1", shares[who], _turn("d", 1, system), now=4)
    assert third in SERVERS


def _served_by(s: Scheduler, id: str, share: Share, prefix, now: float) -> str:
    [grant] = s.submit(Ticket(id, share, "m", SERVERS, prefix=prefix), now)
    s.end(id, now + 1)
    return grant.placement.server


def test_another_tenants_prompt_containing_a_running_one_does_not_end_it():
    s = _scheduler()
    s.submit(_ticket("b1", "bob", _turn("b", 2)), now=0)
    s.submit(_ticket("m1", "mallory", _turn("b", 3)), now=1)
    assert "b1" in s.running  # only bob's own next turn tells that bob's answer came back
    s.submit(_ticket("b2", "bob", _turn("b", 3)), now=2)
    assert "b1" not in s.running


def test_a_running_request_is_expected_to_answer_as_long_as_its_principals_answers_take():
    """One model: the job's answers take 6 s beyond their reading, a person's 0.5 s; each run is expected so."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=2), default_prefill_rate=1000.0)
    question, job = _question("person " + "q" * 400), _question("job " + "j" * 400)
    for _ in range(10):
        s.estimates.generated("m", "job", 6.0)
    s.estimates.generated("m", "person", 0.5)
    s.submit(_ticket("p", "person", question), now=200)
    s.submit(_ticket("j", "job", job), now=200)
    person_reads = s.estimates.prefill_seconds("m", "gpu1", prompt_tokens(question) - s.running["p"].cached)
    assert s.running["p"].expected == pytest.approx(person_reads + 0.5)
    assert s.running["j"].expected > 6.0


def test_a_long_prompt_no_busy_server_holds_takes_a_free_slot_at_once():
    """Nothing of c1's prompt is on the busy server: waiting there saves no reading, so the free slot is taken."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1), default_prefill_rate=1000.0)
    s.submit(_ticket("a1", "agent-a", _turn("a", 4)), now=0)
    [grant] = s.submit(_ticket("c1", "agent-c", _turn("c", 12)), now=0.5)
    assert grant.placement.server != s.running["a1"].placement.server


def test_a_question_never_waits_for_the_server_that_holds_it():
    """The server that answered a person's last question is busy: the next one takes the free slot elsewhere."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1), default_prefill_rate=10.0)
    text = "a question " + "q" * 2000
    home = _served(s, "p1", "person", _question(text), now=0)
    s.submit(_ticket("a1", "agent-a", _turn("a", 4), candidates=(home,)), now=2)
    [grant] = s.submit(_ticket("p2", "person", _question(text + " and one more")), now=2.1)
    assert grant.placement.server != home


def test_a_question_waits_for_the_slot_its_server_lent_a_worker_and_takes_it_once_given_back():
    """Its server's other slot runs another's question (its end not yet told) and this one is lent to a worker: the
    engine has it idle. The question waits for the loan's return, a round trip, rather than be read whole elsewhere;
    when the lent slot was taken meanwhile, it goes elsewhere once the loan is back."""
    s = _scheduler(default_prefill_rate=10.0)
    home = _served(s, "p1", "person", _chat("person", 1), now=0)
    loans = {loan.server: loan for loan in s.lend(["a"], now=1)}  # a slot of each server's two
    [_] = s.submit(_ticket("b1", "bob", _question("bob asks"), candidates=(home,)), now=2)  # read at once
    assert s.submit(_ticket("p2", "person", _chat("person", 2)), now=2.1) == []  # waits
    assert {loan.id for loan in s.recall()} == {loan.id for loan in loans.values()}
    [grant] = s.returned(loans[home].id, now=2.2)
    assert grant.placement.server == home and s.running["p2"].cached > 0
    s.end("p2", now=3)
    s.end("b1", now=3)
    s.returned(next(loan for server, loan in loans.items() if server != home).id, now=3)
    loans = {loan.server: loan for loan in s.lend(["a"], now=3)}
    [_] = s.submit(_ticket("b2", "bob", _chat("bob", 2), candidates=(home,)), now=4)
    assert s.submit(_ticket("p3", "person", _chat("person", 3)), now=4.1) == []
    _on_loan(s, _ticket("c1", "cat", _chat("cat", 1)), loans[home], now=4.1)  # the lent slot was taken meanwhile:
    [grant] = s.returned(loans[home].id, now=4.2)  # the question goes elsewhere once the loan is back
    assert grant.placement.server != home


def _chat(name: str, turns: int):
    """A person's conversation: ``turns`` questions of about 100 tokens, each answered but the last."""
    messages = []
    for i in range(turns):
        messages += [{"role": "user", "content": f"{name} asks {i} " + "q" * 400},
                     {"role": "assistant", "content": f"an answer {i}"}]
    return chain_of("/api/chat", {"messages": messages[:-1]})


def _small_ram(slots: int = 1) -> Scheduler:
    """One server whose RAM prompt cache holds 8,192 tokens: not two of the 6,000-token conversations below."""
    s = Scheduler([ServerSpec("gpu1", num_parallel=slots, prompt_cache_mib=8)], DEFAULT_BOUNDS,
                  Estimates(default_prefill_rate=1000.0))
    s.servers["gpu1"].warm("m", Loaded({}, kv_bytes=1024))
    return s


def test_a_conversation_read_again_whole_anyway_goes_back_to_the_server_that_held_it():
    """On gpu2, saving p's slot to a RAM cache too small for both drops a's conversation before it could be loaded:
    a's next turn reads all of it there as on gpu1. It goes back to gpu2, where it replaces its own copy, not to
    gpu1, which would then hold three conversations for one slot and a RAM cache that keeps one."""
    s = Scheduler([ServerSpec(name, num_parallel=1, prompt_cache_mib=8) for name in SERVERS], DEFAULT_BOUNDS,
                  Estimates(default_prefill_rate=1000.0))
    for server in s.servers.values():
        server.warm("m", Loaded({}, kv_bytes=1024))  # 8,192 tokens of RAM cache each
    for n, (name, turns, home) in enumerate((("a", 3, "gpu2"), ("p", 3, "gpu2"), ("q", 1, "gpu1"), ("r", 1, "gpu1"))):
        [_] = s.submit(_ticket(f"{name}1", f"agent-{name}", _turn(name, turns), candidates=(home,)), now=100 * n)
        s.end(f"{name}1", now=100 * n + 0.5)  # none expected back before the next comes
    gpu1, gpu2 = (s.servers[name].runners["m"].caches for name in SERVERS)
    assert gpu2.holds(_turn("a", 3)) == prompt_tokens(_turn("a", 3)) and gpu2.pick(_turn("a", 4)).cached < 10
    assert gpu1.conversations(_turn("a", 4)) == 2 and gpu2.conversations(_turn("a", 4)) == 1
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 4)), now=500)
    assert grant.placement.server == "gpu2"


def _two_small_servers() -> Scheduler:
    """gpu1 and gpu2 of one slot each, whose RAM prompt caches hold 8,192 tokens: not two 5,000-token prompts."""
    s = Scheduler([ServerSpec(name, num_parallel=1, prompt_cache_mib=8) for name in SERVERS], DEFAULT_BOUNDS,
                  Estimates(default_prefill_rate=1000.0))
    for server in s.servers.values():
        server.warm("m", Loaded({}, kv_bytes=1024))
    return s


def test_a_turn_does_not_wait_for_a_server_that_will_drop_its_conversation_before_loading_it():
    """a's conversation is in gpu2's RAM only, while p runs in gpu2's one slot: when p ends, its prompt saved to
    RAM drops a's before a's next turn could load it. Waiting for gpu2 would spare no reading: a goes to gpu1."""
    s = _two_small_servers()
    [_] = s.submit(_ticket("a1", "agent-a", _turn("a", 3), candidates=("gpu2",)), now=0)
    s.end("a1", now=0.5)
    [_] = s.submit(_ticket("p1", "agent-p", _turn("p", 3), candidates=("gpu2",)), now=100)  # a not expected back
    gpu2 = s.servers["gpu2"].runners["m"].caches
    assert gpu2.holds(_turn("a", 4)) == prompt_tokens(_turn("a", 3))  # held, in RAM
    assert gpu2.pick(_turn("a", 4), freed=gpu2.running_slots()["p1"]).cached < 10  # but not once p1 ends
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 4)), now=101)
    assert (grant.ticket, grant.placement.server) == ("a2", "gpu1")


def test_a_turn_waits_for_a_busy_server_that_will_load_its_conversation_from_ram():
    s = _two_small_servers()
    [_] = s.submit(_ticket("a1", "agent-a", _turn("a", 3), candidates=("gpu2",)), now=0)
    s.end("a1", now=0.5)
    [_] = s.submit(_ticket("p1", "agent-p", _turn("p", 0), candidates=("gpu2",)), now=100)  # 2,000 tokens
    assert s.submit(_ticket("a2", "agent-a", _turn("a", 4)), now=101) == []  # RAM keeps p1's prompt beside a's
    [grant] = s.end("p1", now=102)
    assert (grant.ticket, grant.placement.server) == ("a2", "gpu2")
    assert s.running["a2"].cached == prompt_tokens(_turn("a", 3))


def test_a_long_prompt_waits_rather_than_push_out_a_conversation_expected_back_that_ram_cannot_keep():
    """Taken, a's slot would go to c and a's conversation out of a RAM cache too small for both: a comes back
    to its slot, and c waits while a is expected back (within twice the 2 s it last took, and a second)."""
    s = _small_ram()
    _served(s, "a1", "agent-a", _turn("a", 4), now=0)
    assert s.submit(_ticket("c1", "agent-c", _turn("c", 4), candidates=("gpu1",)), now=2) == []
    [grant] = s.submit(_ticket("a2", "agent-a", _turn("a", 5), candidates=("gpu1",)), now=3)
    assert grant.ticket == "a2" and s.running["a2"].cached == prompt_tokens(_turn("a", 4))
    s.end("a2", now=4)
    assert s.dispatch(now=8.5) == []
    assert [g.ticket for g in s.dispatch(now=9.5)] == ["c1"]


def test_a_long_prompt_waits_at_most_twice_the_reading_it_spares_a_conversation_expected_back():
    """a's 6,000 tokens read again would take 6 s: c waits 12 s at most."""
    s = _small_ram()
    _served(s, "a1", "agent-a", _turn("a", 4), now=0)  # a first turn: expected back within prefix_hold
    assert s.submit(_ticket("c1", "agent-c", _turn("c", 4)), now=2) == []
    assert s.dispatch(now=12) == []
    assert [g.ticket for g in s.dispatch(now=14.5)] == ["c1"]


def test_a_conversation_ram_can_keep_beside_the_new_prompt_is_pushed_out_at_once():
    s = _small_ram()
    _served(s, "a1", "agent-a", _turn("a", 1), now=0)  # 3,000 tokens: RAM keeps it beside c's 5,000
    assert [g.ticket for g in s.submit(_ticket("c1", "agent-c", _turn("c", 3)), now=2)] == ["c1"]


def test_a_question_never_waits_to_spare_a_conversation_its_slot():
    s = _small_ram()
    _served(s, "a1", "agent-a", _turn("a", 6), now=0)
    assert [g.ticket for g in s.submit(_ticket("p1", "person", _question("a question")), now=2)] == ["p1"]


def test_a_longer_request_does_not_go_first_onto_a_slot_its_own_placement_would_wait_for():
    """A question may give way to a much longer request on the slot that frees (its own starts within
    ``yield_within`` on the next), but not when that request, placed in its own turn, would wait rather than push a
    conversation expected back out of the server: the question runs."""
    s = _small_ram(slots=2)
    s.estimates.ended("m", 30.0, 0, "agent-c")
    s.estimates.ended("m", 2.0, 0, "person-b")
    s.estimates.ended("m", 1.0, 0, "person")
    s.submit(_ticket("a1", "agent-a", _turn("a", 4)), now=0)
    s.submit(_ticket("b1", "person-b", _question("one")), now=0.2)  # expected to end at 2.2
    s.submit(_ticket("p1", "person", _question("two")), now=0.5)
    s.submit(_ticket("c1", "agent-c", _turn("c", 4)), now=0.6)
    assert [g.ticket for g in s.end("a1", now=1.5)] == ["p1"]
