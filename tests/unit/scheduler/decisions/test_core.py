import random
from collections import Counter

import pytest

from ollama_proxy.errors import Overloaded, RateLimited
from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.estimates import MODELS_KEPT, Estimates
from ollama_proxy.scheduler.decisions.fairness import BATCH, Share
from ollama_proxy.scheduler.decisions.servers import Loaded, Placement, ServerSpec, Start

SERVERS = ("gpu1", "gpu2")
DEFAULT_BOUNDS = Bounds(load_gather=0)  # a first load at once (its gather: test_one_context.py and below)


def _scheduler(*specs: ServerSpec, bounds: Bounds = DEFAULT_BOUNDS, loaded=("m",), **estimates) -> Scheduler:
    scheduler = Scheduler(specs or [ServerSpec(n, num_parallel=2) for n in SERVERS], bounds, Estimates(**estimates))
    for server in scheduler.servers.values():
        for model in loaded:
            server.warm(model, Loaded({"num_ctx": 4096}))
    return scheduler


def _ticket(id: str, principal: str = "alice", model: str = "m", **kw) -> Ticket:
    share = Share(principal, kw.pop("weight", 1.0), kw.pop("klass", "interactive"))
    return Ticket(id, share, model, kw.pop("candidates", SERVERS), **kw)


def _granted(grants) -> list[str]:
    return [g.ticket for g in grants]


def test_no_server_is_sent_more_than_it_runs_and_a_freed_slot_is_handed_on_in_the_same_call():
    s = _scheduler()
    granted = [g for i in range(5) for g in s.submit(_ticket(f"t{i}", f"person{i}"), now=0)]
    assert _granted(granted) == ["t0", "t1", "t2", "t3"]
    assert sorted(g.placement.server for g in granted) == ["gpu1", "gpu1", "gpu2", "gpu2"]
    assert list(s.waiting) == ["t4"]
    handed = s.end("t2", now=3)
    assert _granted(handed) == ["t4"] and handed[0].placement.server == granted[2].placement.server
    assert handed[0].waited == 3


def test_a_newcomer_goes_ahead_of_a_backlog():
    s = _scheduler(ServerSpec("gpu1"))
    for i in range(10):
        s.submit(_ticket(f"batch{i}", "batch"), now=0)
    s.submit(_ticket("q1", "carol"), now=1)
    assert _granted(s.end("batch0", now=2)) == ["q1"]
    assert _granted(s.end("q1", now=3)) == ["batch1"]


def test_an_agent_back_from_thinking_does_not_go_ahead_of_a_person_who_waited():
    """Each turn of an agent holds a slot for seconds; between turns it has nothing in for a second.

    Were it forgiven its last turn each time (level with the least-served on its return), agents
    taking turns would go ahead of a person waiting behind them, turn after turn.
    """
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), default_slot_seconds=6.0)
    assert _granted(s.submit(_ticket("a0", "agent-a"), now=0)) == ["a0"]
    s.submit(_ticket("q1", "person"), now=0.5)
    s.submit(_ticket("q2", "person"), now=0.5)  # a second question (another tab) before the first is answered
    s.submit(_ticket("b0", "agent-b"), now=0.6)
    assert _granted(s.end("a0", now=6)) == ["q1"]
    assert _granted(s.end("q1", now=6.5)) == ["b0"]  # agent-b is level with the person, and asked first
    s.submit(_ticket("a1", "agent-a"), now=7)  # agent-a thought for a second
    assert _granted(s.end("b0", now=12.5)) == ["q2"]  # not agent-a's next turn: it had six seconds already


def _run_backlogged(s: Scheduler, shares: dict[str, Share], seconds: float, slot: float = 1.0) -> dict[str, float]:
    """Keep every principal backlogged; return the slot-seconds each got."""
    used = dict.fromkeys(shares, 0.0)
    running: dict[str, tuple[str, float]] = {}
    count = 0

    def start(grants, now):
        for g in grants:
            running[g.ticket] = (g.ticket.split("#")[0], now)

    for name, share in shares.items():
        for _ in range(4):
            count += 1
            start(s.submit(Ticket(f"{name}#{count}", share, "m", SERVERS), now=0), 0)
    now = 0.0
    while now < seconds:
        now += slot
        for ticket_id, (name, began) in list(running.items()):
            del running[ticket_id]
            used[name] += now - began
            count += 1
            start(s.submit(Ticket(f"{name}#{count}", shares[name], "m", SERVERS), now=now), now)
            start(s.end(ticket_id, now), now)
    return used


def test_backlogged_principals_share_slot_time_in_proportion_to_their_weights():
    shares = {"alice": Share("alice", weight=2), "bob": Share("bob"), "carol": Share("carol")}
    used = _run_backlogged(_scheduler(default_slot_seconds=1.0), shares, seconds=400)
    total = sum(used.values())
    assert used["alice"] / total == pytest.approx(0.5, abs=0.02)
    assert used["bob"] / total == pytest.approx(0.25, abs=0.02)


def test_interactive_goes_ahead_of_batch_until_batch_has_aged():
    s = _scheduler(ServerSpec("gpu1"), bounds=Bounds(batch_ageing=30))
    s.submit(_ticket("running", "x"), now=0)
    s.submit(_ticket("b1", "job", klass=BATCH), now=0)
    s.submit(_ticket("i1", "alice"), now=1)
    assert _granted(s.end("running", now=2)) == ["i1"]
    s.submit(_ticket("i2", "alice"), now=3)
    s.submit(_ticket("i3", "bob"), now=3)
    assert _granted(s.end("i1", now=31)) == ["b1"]  # waited 31 s: counts as interactive, and was served least


def test_a_client_that_left_while_waiting_is_never_granted():
    s = _scheduler(ServerSpec("gpu1"))
    s.submit(_ticket("t1"), now=0)
    s.submit(_ticket("gone"), now=0)
    s.submit(_ticket("t3"), now=0)
    assert s.cancel("gone", now=1) == []
    assert _granted(s.end("t1", now=2)) == ["t3"]
    assert _granted(s.cancel("t3", now=3)) == [] and not s.running  # a running one that left frees its slot


def test_a_granted_request_cancelled_unsent_frees_its_slot_and_teaches_nothing_of_how_long_answers_take():
    s = _scheduler(ServerSpec("gpu1", num_parallel=1))
    s.submit(_ticket("t1"), now=0)
    s.submit(_ticket("t2"), now=0)
    s.end("t1", now=10)  # an answer of ten seconds
    learned = s.estimates.slot_seconds("m")
    assert _granted(s.cancel("t2", now=10.01)) == [] and not s.running  # refused at its grant: never sent
    assert s.estimates.slot_seconds("m") == learned


def test_warm_first():
    s = _scheduler(ServerSpec("gpu1"), ServerSpec("gpu2"), loaded=())
    s.servers["gpu2"].warm("m", Loaded({}))
    (grant,) = s.submit(_ticket("t1"), now=0)
    assert (grant.placement.server, grant.placement.start) == ("gpu2", Start.WARM)


def test_another_server_loads_the_model_only_when_that_beats_the_wait_for_a_warm_slot():
    for load, expected in ((2.0, "gpu2"), (60.0, None)):
        s = _scheduler(ServerSpec("gpu1"), ServerSpec("gpu2"), loaded=(), default_slot_seconds=20.0,
                       default_load_seconds=load)
        s.servers["gpu1"].warm("m", Loaded({}))
        s.submit(_ticket("t1"), now=0)
        grants = s.submit(_ticket("t2"), now=1)  # a warm slot frees in about 19 s
        assert [g.placement.server for g in grants] == ([expected] if expected else [])
        if expected:
            assert grants[0].placement.start is Start.LOAD


def test_a_request_stops_waiting_for_a_warm_slot_held_far_past_its_expected_end_and_loads_elsewhere():
    """t1, expected to take 5 s, streams on: from 5 s on it is expected to run as long again as it overran, and
    once that passes the load (10 s) the other server loads the model rather than t2 wait on."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1), loaded=(),
                   default_slot_seconds=5.0, default_load_seconds=10.0)
    s.servers["gpu1"].warm("m", Loaded({}))
    s.submit(_ticket("t1"), now=0)
    assert s.submit(_ticket("t2", "bob"), now=1) == [] and s.dispatch(now=14.5) == []
    [grant] = s.dispatch(now=15.5)
    assert (grant.placement.server, grant.placement.start) == ("gpu2", Start.LOAD)


def test_a_slot_on_a_server_still_loading_frees_after_the_load_so_an_idle_server_loads_rather_than_wait():
    """Nothing loaded anywhere: two agents start the model on gpu1, and their slots there free after its load
    (10 s, as far as the proxy knows) and their answers (5 s). A third request would wait that long for them; the
    idle gpu2 loads the model for it instead, in the load's time. Once an answer ends, the load is over."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=2), ServerSpec("gpu2", num_parallel=2), loaded=(),
                   default_slot_seconds=5.0, default_load_seconds=10.0)
    first = s.submit(_ticket("a0", "agent-0"), now=0) + s.submit(_ticket("a1", "agent-1"), now=0.5)
    assert [(g.placement.server, g.placement.start) for g in first] == [("gpu1", Start.LOAD), ("gpu1", Start.WARM)]
    [third] = s.submit(_ticket("a2", "agent-2"), now=1.0)
    assert (third.placement.server, third.placement.start) == ("gpu2", Start.LOAD)
    s.end("a0", now=4.0, load_seconds=0.5)
    assert s.servers["gpu1"].runners["m"].ready_at == 0.5  # a1 reads from then: its slot frees 5 s after


def test_a_model_not_loaded_anywhere_loads_at_once():
    s = _scheduler(ServerSpec("gpu1"), loaded=())
    (grant,) = s.submit(_ticket("t1"), now=0)
    assert grant.placement.start is Start.LOAD


def test_the_first_load_of_a_model_waits_load_gather_and_takes_the_largest_options_asked_with_it():
    s = _scheduler(ServerSpec("gpu1"), loaded=(), bounds=Bounds(load_gather=0.25))
    s.refresh("gpu1", {}, now=0)  # the server says it has nothing loaded
    assert s.submit(_ticket("t1"), now=0) == []
    assert s.submit(_ticket("t2", "bob", asked={"num_ctx": 8192}), now=0.1) == []
    (grant,) = s.dispatch(now=0.3)
    assert (grant.ticket, grant.placement.start, grant.placement.options) == ("t1", Start.LOAD, {"num_ctx": 8192})
    s.end("t1", now=1)
    s.servers["gpu1"].runners.clear()  # unloaded: a later load goes at once
    assert [g.placement.start for g in s.submit(_ticket("t3"), now=2)] == [Start.LOAD]


def test_before_the_servers_said_what_they_have_loaded_a_first_load_does_not_wait():
    """The model may be loaded already (a restarted proxy): the request goes at once, warm there if it is."""
    s = _scheduler(ServerSpec("gpu1"), loaded=(), bounds=Bounds(load_gather=0.25))
    assert [g.placement.start for g in s.submit(_ticket("t1"), now=0)] == [Start.LOAD]


def test_a_larger_context_drains_the_runner_then_reloads_it_once_and_the_rest_use_it():
    s = _scheduler(ServerSpec("gpu1", num_parallel=2), loaded=())
    s.servers["gpu1"].warm("m", Loaded({"num_ctx": 2048}))
    s.submit(_ticket("small1", asked={"num_ctx": 2048}), now=0)
    assert _granted(s.submit(_ticket("big", "bob", asked={"num_ctx": 8192}), now=1)) == []
    assert _granted(s.submit(_ticket("small2", "carol"), now=2)) == []  # held back: the runner drains for big
    reload, small2 = s.end("small1", now=3)
    assert (reload.ticket, reload.placement.start, reload.placement.options) == ("big", Start.RELOAD, {"num_ctx": 8192})
    assert (small2.ticket, small2.placement.start) == ("small2", Start.WARM)
    assert small2.placement.options == {"num_ctx": 8192}
    s.end("small2", now=4)
    (small3,) = s.submit(_ticket("small3", "dave", asked={"num_ctx": 2048}), now=5)
    assert (small3.placement.start, small3.placement.options) == (Start.WARM, {"num_ctx": 8192})


def test_one_num_ctx_per_model_and_server_no_reload_thrash():
    s = _scheduler(ServerSpec("gpu1", num_parallel=2), loaded=())
    asks = [{"num_ctx": 2048}, {"num_ctx": 8192}, {}] * 10
    starts = []
    for i, asked in enumerate(asks):
        for grant in s.submit(_ticket(f"t{i}", f"p{i % 3}", asked=asked), now=i):
            starts.append(grant.placement.start)
        for ticket_id in list(s.running):
            for grant in s.end(ticket_id, now=i + 0.5):
                starts.append(grant.placement.start)
    assert starts.count(Start.LOAD) + starts.count(Start.RELOAD) == 2  # the load, then one reload to 8192
    assert len(starts) == len(asks)


def test_a_model_waits_rather_than_be_sent_to_a_server_whose_loaded_models_are_all_busy():
    s = _scheduler(ServerSpec("gpu1", max_loaded_models=1), loaded=("a",))
    s.submit(_ticket("ta", model="a"), now=0)
    assert s.submit(_ticket("tb", model="b"), now=1) == []
    (grant,) = s.end("ta", now=2)
    assert grant.ticket == "tb" and grant.placement.evict == "a"


def test_a_models_queue_is_bounded_per_server_and_a_request_is_refused_only_where_every_server_is_full():
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), ServerSpec("gpu2", num_parallel=1),
                   bounds=Bounds(max_queued_per_model=2))
    s.submit(_ticket("run1", candidates=("gpu1",)), now=0)
    s.submit(_ticket("run2", candidates=("gpu2",)), now=0)
    s.submit(_ticket("g1a", "a", candidates=("gpu1",)), now=0)
    s.submit(_ticket("g1b", "b", candidates=("gpu1",)), now=0)
    with pytest.raises(Overloaded, match="every server that may run it"):
        s.submit(_ticket("g1c", "c", candidates=("gpu1",)), now=0)  # gpu1's queue is full
    s.submit(_ticket("either", "d", candidates=("gpu1", "gpu2")), now=0)  # gpu2's is not: it waits for both
    s.submit(_ticket("g2a", "e", candidates=("gpu2",)), now=0)
    with pytest.raises(Overloaded):
        s.submit(_ticket("either2", "f", candidates=("gpu1", "gpu2")), now=0)  # now both are
    assert sorted(s.waiting) == ["either", "g1a", "g1b", "g2a"]


def test_queues_are_bounded_per_principal_and_per_model():
    s = _scheduler(ServerSpec("gpu1"), bounds=Bounds(max_queued_per_principal=2, max_queued_per_model=3,
                                                      max_queued_share=1.0))
    s.submit(_ticket("run"), now=0)
    s.submit(_ticket("a1"), now=0)
    s.submit(_ticket("a2"), now=0)
    with pytest.raises(RateLimited) as own:
        s.submit(_ticket("a3"), now=0)
    assert own.value.status == 429 and own.value.retry_after >= 1
    s.submit(_ticket("b1", "bob"), now=0)
    with pytest.raises(Overloaded) as model:
        s.submit(_ticket("c1", "carol"), now=0)
    assert model.value.status == 503 and model.value.retry_after >= 1


def test_a_principal_fills_only_its_share_of_a_models_queue_and_others_still_get_in():
    s = _scheduler(ServerSpec("gpu1", num_parallel=1),
                   bounds=Bounds(max_queued_per_model=4, load_gather=0))  # the default half
    s.submit(_ticket("run"), now=0)
    s.submit(_ticket("a1"), now=0)
    s.submit(_ticket("a2"), now=0)
    with pytest.raises(RateLimited, match="scheduling.max_queued_share") as past:
        s.submit(_ticket("a3"), now=0)
    assert past.value.status == 429 and past.value.retry_after >= 1
    s.submit(_ticket("other-model", model="n"), now=0)  # its part of another model's queue is its own
    s.submit(_ticket("b1", "bob"), now=0)
    s.submit(_ticket("b2", "bob"), now=0)
    assert sorted(s.waiting) == ["a1", "a2", "b1", "b2"] and "other-model" in s.running


@pytest.mark.parametrize("mine, theirs, whose", [
    (Share("key:1", owner="mia"), Share("key:2", owner="mia"), "person 'mia'"),
    (Share("key:1", team="red"), Share("key:2", team="red"), "your team"),
], ids=["one person's keys", "one team's keys"])
def test_a_persons_or_teams_keys_together_fill_only_one_part_of_a_models_queue(mine, theirs, whose):
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), bounds=Bounds(max_queued_per_model=4, load_gather=0))
    s.submit(Ticket("run", Share("carol"), "m", SERVERS), now=0)
    s.submit(Ticket("a1", mine, "m", SERVERS), now=0)
    s.submit(Ticket("a2", mine, "m", SERVERS), now=0)
    with pytest.raises(RateLimited, match=f"of {whose} for m") as past:
        s.submit(Ticket("b1", theirs, "m", SERVERS), now=0)
    assert past.value.status == 429
    s.submit(Ticket("c1", Share("key:3", owner="leo", team="blue"), "m", SERVERS), now=0)  # others still get in
    assert sorted(s.waiting) == ["a1", "a2", "c1"]


def test_a_principals_part_of_a_queue_is_at_least_one_request():
    assert Bounds(max_queued_per_model=1).principal_part_of_queue == 1
    assert Bounds(max_queued_per_model=512).principal_part_of_queue == 256
    assert Bounds(max_queued_per_model=10, max_queued_share=0.25).principal_part_of_queue == 2


def test_requests_past_the_longest_wait_expire():
    s = _scheduler(ServerSpec("gpu1"), bounds=Bounds(max_wait=10))
    s.submit(_ticket("run"), now=0)
    s.submit(_ticket("early"), now=1)
    s.submit(_ticket("late"), now=5)
    assert [ticket_id for ticket_id, _ in s.expire(now=11)] == ["early"] and list(s.waiting) == ["late"]


def test_an_expired_request_is_told_when_the_queue_for_its_model_will_likely_have_drained():
    s = _scheduler(ServerSpec("gpu1"), bounds=Bounds(max_wait=10))
    s.submit(_ticket("run"), now=0)
    s.submit(_ticket("early"), now=1)
    for i in range(5):
        s.submit(_ticket(f"later{i}"), now=5)
    for t in range(2, 8):  # six requests for the model ended between 2 s and 7 s: 6 in 9 s at 11 s
        s.estimates.ended("m", 1.0, now=t)
    [(ticket_id, retry_after)] = s.expire(now=11)
    # Five requests for its model still wait, and it would come after them: 6 / (6/9 a second) = 9 s.
    assert ticket_id == "early" and 8 <= retry_after <= 10


def test_a_server_outside_a_requests_candidates_is_never_used():
    s = _scheduler()
    grants = [g for i in range(3) for g in s.submit(_ticket(f"t{i}", candidates=("gpu2",)), now=0)]
    assert {g.placement.server for g in grants} == {"gpu2"} and list(s.waiting) == ["t2"]


def test_batch_work_leaves_a_warm_slot_free_while_people_use_the_model():
    s = _scheduler(bounds=Bounds(interactive_headroom=1, headroom_window=30, batch_ageing=100))
    s.submit(_ticket("question", "alice"), now=0)
    s.end("question", now=1)
    granted = [g for i in range(6) for g in s.submit(_ticket(f"b{i}", "job", klass=BATCH), now=2)]
    assert len(granted) == 3  # of four slots: one stays free for the next question
    (answer,) = s.submit(_ticket("next question", "bob"), now=3)
    assert answer.ticket == "next question"
    assert _granted(s.end("next question", now=4)) == []  # freed again for people
    assert _granted(s.dispatch(now=32)) == []
    assert _granted(s.dispatch(now=33)) == ["b3"]  # nobody asked for 30 s: batch may use every slot


def test_batch_work_leaves_the_slot_for_people_until_a_whole_window_has_passed_without_a_question():
    """A scheduler that has not watched a model for headroom_window yet cannot tell that nobody uses it: a batch
    job started first (a restart, or the morning's job before people come) leaves the slot as if one had asked."""
    s = _scheduler(bounds=Bounds(interactive_headroom=1, headroom_window=30, batch_ageing=100))
    granted = [g for i in range(6) for g in s.submit(_ticket(f"b{i}", "job", klass=BATCH), now=0)]
    assert len(granted) == 3
    assert _granted(s.dispatch(now=29.9)) == []
    assert _granted(s.dispatch(now=30)) == ["b3"]  # watched for 30 s, no question: batch may use every slot


def test_batch_work_held_from_the_slot_kept_for_people_loads_the_model_on_a_server_with_room():
    """The model warm on gpu1 only: batch work takes one slot there and leaves the other to people; rather than
    wait beside an idle gpu2, it loads the model there, where nothing need be unloaded."""
    s = _scheduler(bounds=Bounds(interactive_headroom=1, headroom_window=30, batch_ageing=100, load_gather=0),
                   loaded=())
    s.servers["gpu1"].warm("m", Loaded({"num_ctx": 4096}))
    granted = [g for i in range(6) for g in s.submit(_ticket(f"b{i}", "job", klass=BATCH), now=0)]
    assert [(g.placement.server, g.placement.start) for g in granted] == [
        ("gpu1", Start.WARM), ("gpu2", Start.LOAD), ("gpu1", Start.WARM)]  # one of the four slots left free


def test_batch_work_held_from_the_slot_kept_for_people_never_unloads_or_reloads_a_model_for_it():
    """gpu2 holds another model, idle (loading m there would unload it), or m with a context too small for the
    job (loading it again would stop anyone using it there): batch work waits rather than do either. (People's
    questions, asking no context, can use m there: then both of gpu1's slots go to the job.)"""
    bounds = Bounds(interactive_headroom=1, headroom_window=30, batch_ageing=100, load_gather=0)
    for model, options, taken in (("other", {"num_ctx": 4096}, 1), ("m", {"num_ctx": 2048}, 2)):
        s = _scheduler(ServerSpec("gpu1", num_parallel=2), ServerSpec("gpu2", num_parallel=2, max_loaded_models=1),
                       bounds=bounds, loaded=())
        s.servers["gpu1"].warm("m", Loaded({"num_ctx": 8192}))
        s.servers["gpu2"].warm(model, Loaded(options))
        granted = [g for i in range(4) for g in s.submit(
            _ticket(f"b{i}", "job", klass=BATCH, asked={"num_ctx": 8192}), now=0)]
        assert [(g.placement.server, g.placement.start) for g in granted] == [("gpu1", Start.WARM)] * taken, model


def test_an_interactive_jobs_first_answers_leave_a_slot_for_people_until_one_of_them_ends():
    """A key of the interactive class asking as many at once as the model has slots, none of whose answers has
    ended: nothing says yet that they are long, and pacing can only act once one has ended."""
    s = _scheduler(bounds=Bounds(interactive_headroom=1, headroom_window=30, load_gather=0))
    granted = [g for i in range(6) for g in s.submit(_ticket(f"j{i}", "job"), now=0)]
    assert _granted(granted) == ["j0", "j1", "j2"]  # of four slots: one stays free for the first question
    assert _granted(s.submit(_ticket("question", "bob"), now=1)) == ["question"]
    assert _granted(s.end("question", now=2)) == []  # freed again for people
    assert _granted(s.end("j0", now=5)) == ["j3"]  # an answer of its own ended: its length is known, and it is
    assert _granted(s.dispatch(now=6.2)) == []  # paced now (pacing.py), a quarter of its 5 s apart on four slots
    assert _granted(s.dispatch(now=6.25)) == ["j4"]


def test_a_principals_few_requests_at_once_never_hold_each_other():
    """Fewer at once than the model's slots (an answer and its title), or a model with fewer than three warm slots:
    nothing kept from them."""
    s = _scheduler(bounds=Bounds(interactive_headroom=1, headroom_window=30, load_gather=0))
    assert len([g for i in range(3) for g in s.submit(_ticket(f"a{i}"), now=0)]) == 3
    s = _scheduler(ServerSpec("gpu1", num_parallel=2), bounds=Bounds(interactive_headroom=1, headroom_window=30))
    assert len([g for i in range(4) for g in s.submit(_ticket(f"a{i}"), now=0)]) == 2


@pytest.mark.parametrize(("asked_at", "taken"), [(0, 4), (20, 3)])
def test_a_jobs_first_answers_leave_a_slot_only_while_someone_else_may_ask(asked_at, taken):
    """Past the model's first window, only another's question within ``headroom_window`` keeps the slot."""
    s = _scheduler(bounds=Bounds(interactive_headroom=1, headroom_window=30, load_gather=0))
    s.submit(_ticket("question", "bob"), now=asked_at)
    s.end("question", now=asked_at + 1)
    assert len([g for i in range(6) for g in s.submit(_ticket(f"j{i}", "job"), now=40)]) == taken


def test_a_job_with_nothing_running_is_never_held_from_the_last_slot():
    """What would free the slot kept is one of its own answers ending: with none running, it could wait for
    others' forever."""
    s = _scheduler(bounds=Bounds(interactive_headroom=1, headroom_window=30, load_gather=0))
    assert len([g for i in range(3) for g in s.submit(_ticket(f"b{i}", "bob"), now=0)]) == 3
    assert _granted([g for i in range(4) for g in s.submit(_ticket(f"j{i}", "job"), now=0)]) == ["j0"]


def test_without_headroom_batch_work_takes_every_free_slot():
    s = _scheduler(bounds=Bounds(interactive_headroom=0))
    s.submit(_ticket("question", "alice"), now=0)
    s.end("question", now=1)
    assert len([g for i in range(6) for g in s.submit(_ticket(f"b{i}", "job", klass=BATCH), now=2)]) == 4


def _taught(s: Scheduler, **seconds: float) -> Scheduler:
    """Let the scheduler have seen each principal's requests for m hold a slot so many seconds."""
    for principal, used in seconds.items():
        s.estimates.ended("m", used, now=0, principal=principal)
    return s


def _a_question_running_and_a_job_answer_ending(bounds: Bounds = DEFAULT_BOUNDS, alice: float = 0.5):
    """One server of two slots: a job answer ends at 6 while alice's question runs and bob's waits."""
    s = _taught(_scheduler(ServerSpec("gpu1", num_parallel=2), bounds=bounds), job=6.0, alice=alice, bob=0.5)
    assert _granted(s.submit(_ticket("j1", "job", candidates=("gpu1",)), now=0)) == ["j1"]
    assert _granted(s.submit(_ticket("q1", "alice", candidates=("gpu1",)), now=5.6)) == ["q1"]
    s.submit(_ticket("j2", "job", candidates=("gpu1",)), now=5.7)
    s.submit(_ticket("q2", "bob", candidates=("gpu1",)), now=5.8)
    assert [t.id for t in s.queue(now=5.9)] == ["q2", "j2"]
    return s


def test_a_much_longer_request_starts_first_when_the_question_it_passes_still_starts_within_yield_within():
    s = _a_question_running_and_a_job_answer_ending()
    assert _granted(s.end("j1", now=6.0)) == ["j2"]  # alice's question is expected to end at 6.1
    (question,) = s.end("q1", now=6.1)
    assert question.ticket == "q2" and question.waited == pytest.approx(0.3)


def test_a_question_goes_first_when_giving_way_would_keep_it_waiting_longer_than_yield_within():
    s = _a_question_running_and_a_job_answer_ending(alice=2.0)  # alice's question is expected to end at 7.6
    assert _granted(s.end("j1", now=6.0)) == ["q2"]


def test_without_yield_within_the_order_is_strict():
    s = _a_question_running_and_a_job_answer_ending(Bounds(yield_within=0))
    assert _granted(s.end("j1", now=6.0)) == ["q2"]


def test_a_request_that_gave_way_does_not_give_way_again_past_yield_within_from_the_first_time():
    s = _taught(_scheduler(ServerSpec("gpu1", num_parallel=3)), job=6.0, alice=0.5, bob=0.5, carol=1.5)
    only = {"candidates": ("gpu1",)}
    s.submit(_ticket("j1", "job", **only), now=0)
    s.submit(_ticket("q1", "alice", **only), now=5.6)  # expected to end at 6.1
    s.submit(_ticket("q3", "carol", **only), now=5.8)  # expected to end at 7.3
    s.submit(_ticket("j2", "job", **only), now=5.85)
    s.submit(_ticket("q2", "bob", **only), now=5.9)
    assert _granted(s.end("j1", now=6.0)) == ["j2"]  # bob's question gives way: alice's ends at 6.1
    s.submit(_ticket("j3", "job", **only), now=6.05)
    # Alice's question ran long. Carol's slot, expected at 7.3, is within 1 s of now but not of 6.0.
    assert _granted(s.end("q1", now=6.8)) == ["q2"]


def test_requests_of_about_the_same_length_keep_their_order():
    s = _taught(_scheduler(ServerSpec("gpu1", num_parallel=2)), job=0.9, alice=0.5, bob=0.5)
    only = {"candidates": ("gpu1",)}
    s.submit(_ticket("j1", "job", **only), now=0)
    s.submit(_ticket("q1", "alice", **only), now=0.4)  # expected to end at 0.9
    s.submit(_ticket("j2", "job", **only), now=0.5)
    s.submit(_ticket("q2", "bob", **only), now=0.6)
    assert _granted(s.end("j1", now=0.9)) == ["q2"]  # the job's 0.9 s is less than twice bob's 0.5 s


def test_a_request_waiting_to_reload_a_model_starts_when_the_server_says_it_already_runs_those_options():
    s = _scheduler(ServerSpec("gpu1", num_parallel=2), loaded=())
    s.servers["gpu1"].warm("m", Loaded({"num_ctx": 2048}))
    only = {"candidates": ("gpu1",)}
    assert _granted(s.submit(_ticket("a", asked={"num_ctx": 2048}, **only), now=0)) == ["a"]
    assert _granted(s.submit(_ticket("b", asked={"num_ctx": 8192}, **only), now=1)) == []  # waits to reload it
    assert _granted(s.refresh("gpu1", {"m": Loaded({"num_ctx": 8192})}, now=2)) == ["b"]  # no reload needed after all


def _refreshed_at_random(s: Scheduler, rnd: random.Random, now: float):
    """A server's view of what it holds: nothing, the model with some context length, or what the scheduler thinks."""
    server = rnd.choice(SERVERS)
    view = rnd.choice([{}, {"m": Loaded({"num_ctx": rnd.choice([2048, 4096, 8192])})},
                       {m: Loaded(dict(r.options)) for m, r in s.servers[server].runners.items()}])
    return s.refresh(server, view, now)


def _assert_counted_in(s: Scheduler) -> None:
    """The nodes counted as active are exactly those with a request waiting or running under them, as many times."""
    tickets = [*s.waiting.values(), *(run.ticket for run in s.running.values())]
    inside = Counter(node for t in tickets for node, _ in t.share.path)
    assert s.order.counts() == dict(inside)


def test_whenever_nothing_runs_nothing_waits():
    """Random submits, ends, cancels, expiries and (stale or fresh) views of what the servers hold, from two
    principals."""
    asks = [{"num_ctx": 2048}, {"num_ctx": 8192}, {}]
    expired = 0
    for seed in range(300):
        rnd = random.Random(seed)
        s = _scheduler(ServerSpec("gpu1", 2, 1), ServerSpec("gpu2", 2, 1), loaded=(),
                       bounds=Bounds(max_wait=3.0, load_gather=0))  # some wait longer: they expire
        now, running, count = 0.0, set(), 0
        for _ in range(200):
            now += rnd.random() * 0.3
            roll = rnd.random()
            if roll < 0.45:
                count += 1
                ticket = _ticket(f"t{count}", rnd.choice(["alice", "bob"]), asked=dict(rnd.choice(asks)))
                grants = s.submit(ticket, now)
            elif roll < 0.85 and running:
                ended = rnd.choice(sorted(running))
                running.discard(ended)
                grants = s.end(ended, now, rnd.choice([None, 0.5]))
            elif roll < 0.9 and s.waiting:
                grants = s.cancel(rnd.choice(sorted(s.waiting)), now)
            elif roll < 0.95:
                grants = _refreshed_at_random(s, rnd, now)
            else:
                grants, gone = [], s.expire(now)
                expired += len(gone)
            running |= set(_granted(grants))
            assert s.running.keys() == running
            assert s.running or not s.waiting, (seed, list(s.waiting))
            _assert_counted_in(s)
    assert expired > 0  # the runs reach the bound


def _lending(num_parallel: int = 6) -> Scheduler:
    return _scheduler(ServerSpec("gpu1", num_parallel=num_parallel), loaded=("m",))


def _on_loan(s: Scheduler, ticket: Ticket, loan, now: float) -> None:
    s.start_on_loan(ticket, loan.id, Placement(loan.server, Start.WARM, dict(loan.options)), now)


def test_while_nothing_waits_each_worker_borrows_a_share_of_the_free_warm_slots_and_a_lent_slot_is_not_free():
    s = _lending()
    loans = s.lend(["a", "b"], now=0)
    assert [(loan.holder, loan.server, loan.model, loan.slots) for loan in loans] == [("a", "gpu1", "m", 2),
                                                                                     ("b", "gpu1", "m", 2)]
    assert loans[0].options == {"num_ctx": 4096}
    assert s.lend(["a", "b"], now=1) == []  # each has its share
    assert s.servers["gpu1"].free_slots("m") == 2  # the rest stay free for whoever asks
    assert _granted(s.submit(_ticket("t1"), now=1) + s.submit(_ticket("t2"), now=1)) == ["t1", "t2"]
    assert _granted(s.submit(_ticket("t3"), now=1)) == [] and s.recall() == loans  # waits: every loan is called back
    assert s.recall() == []  # once
    assert _granted(s.returned(loans[0].id, now=2)) == ["t3"]
    assert s.lend(["a", "b"], now=2) == []  # one slot free (three run, b's two are out): too few to share
    assert _granted(s.returned(loans[1].id, now=3)) == []
    assert [(loan.holder, loan.slots) for loan in s.lend(["a", "b"], now=3)] == [("a", 2)]  # b: the last free one
    s.end("t1", now=4)
    assert [(loan.holder, loan.slots) for loan in s.lend(["a", "b"], now=4)] == [("b", 1)]  # what b lacks...
    s.end("t2", now=5)
    assert [(loan.holder, loan.slots) for loan in s.lend(["a", "b"], now=5)] == [("b", 1)]  # ...as slots free


@pytest.mark.parametrize("rate, below", [(1000.0, 250), (100_000.0, 1024), (100.0, 25)])
def test_a_loan_takes_only_prompts_the_server_reads_again_in_a_quarter_second(rate, below):
    """A longer prompt asks the arbiter, which places it where it is cached: on a slow server, nearly all do."""
    s = _scheduler(ServerSpec("gpu1", num_parallel=6), default_prefill_rate=rate)
    [loan] = s.lend(["a"], now=0)
    assert loan.prompt_below == below


def test_a_request_on_a_loan_runs_as_any_other_and_its_slot_goes_back_to_the_loan():
    s = _lending()
    loan = s.lend(["a"], now=0)[0]
    assert loan.slots == 3
    _on_loan(s, _ticket("t1"), loan, now=1)
    runner = s.servers["gpu1"].runners["m"]
    assert (runner.running, runner.lent, loan.in_use) == (1, 2, 1)
    assert s.status(now=2)["running"][0]["principal"] == "alice"
    assert s.order.vtime(("alice",)) > 0  # charged at start, as a granted request is
    assert s.end("t1", now=3) == []
    assert (runner.running, runner.lent, loan.in_use) == (0, 3, 0)
    assert s.estimates.slot_seconds("m", "alice") != Estimates().slot_seconds("m")  # its time was learned


def test_a_request_that_ran_on_a_loan_before_it_was_told_of_is_charged_and_learned_from_and_holds_no_slot():
    s = _lending()
    loan = s.lend(["a"], now=0)[0]
    _on_loan(s, _ticket("t1", "alice"), loan, now=1)  # alice holds one
    s.ran(Share("bob"), "m", "gpu1", 4, 2.0, now=2)  # four of bob's ran and ended on other lent slots
    runner = s.servers["gpu1"].runners["m"]
    assert (runner.running, runner.lent, loan.in_use) == (1, 2, 1) and list(s.running) == ["t1"]
    assert s.order.vtime(("bob",)) == pytest.approx(2.0)  # level with what alice has had (nothing), then charged
    assert s.estimates.slot_seconds("m", "bob") == 0.5 and runner.last_used == 2  # each held its slot 0.5 s
    assert s.estimates.drain_rate("m", now=2) == 4.0  # four ended within the last second
    assert s.returned(loan.id, now=3) == [] and s.servers["gpu1"].free_slots("m") == 5  # alice's still runs


def test_a_returned_loan_frees_its_unused_slots_and_its_requests_run_on_and_end_as_any_other():
    s = _lending()
    loan = s.lend(["a"], now=0)[0]
    _on_loan(s, _ticket("t1"), loan, now=1)
    assert s.returned(loan.id, now=2) == []
    runner = s.servers["gpu1"].runners["m"]
    assert (runner.running, runner.lent) == (1, 0)
    assert s.end("t1", now=3) == []
    assert (runner.running, runner.lent, s.servers["gpu1"].free_slots("m")) == (0, 0, 6)


def test_nothing_is_lent_while_anything_waits_during_a_hold_or_where_a_share_would_be_no_slot():
    s = _lending(num_parallel=1)
    s.submit(_ticket("t1"), now=0)
    s.submit(_ticket("t2"), now=0)
    assert s.lend(["a"], now=0) == []  # t2 waits
    s = _lending()
    s.hold_until = 5
    assert s.lend(["a"], now=1) == []
    assert _lending(num_parallel=2).lend(["a", "b"], now=0) == []  # two free slots, three ways


def test_a_larger_context_waits_for_the_loans_to_come_back_then_reloads_the_model():
    s = _lending()
    loans = s.lend(["a", "b"], now=0)
    assert _granted(s.submit(_ticket("big", asked={"num_ctx": 8192}), now=1)) == []
    assert s.recall() == loans
    s.returned(loans[0].id, now=2)
    assert s.waiting
    grants = s.returned(loans[1].id, now=2)
    assert _granted(grants) == ["big"] and grants[0].placement.start is Start.RELOAD


def test_a_loan_on_a_model_the_server_says_runs_with_other_options_is_called_back():
    s = _lending()
    loan = s.lend(["a"], now=0)[0]
    s.refresh("gpu1", {"m": Loaded({"num_ctx": 4096})}, now=1)
    assert s.recall() == []
    s.refresh("gpu1", {"m": Loaded({"num_ctx": 8192})}, now=2)
    assert s.recall() == [loan]


def test_the_loans_of_a_worker_that_is_gone_come_back():
    s = _lending()
    loan = s.lend(["a", "b"], now=0)[0]
    _on_loan(s, _ticket("t1"), loan, now=1)
    s.forget("a", now=2)
    assert list(s.loans) != [] and loan.id not in s.loans
    s.cancel("t1", now=2)  # its requests are cancelled too
    assert s.servers["gpu1"].free_slots("m") == 6 - 2  # b's loan alone is out


def test_a_start_on_a_loan_the_arbiter_does_not_know_counts_the_request_in_all_the_same():
    s = _lending()
    s.start_on_loan(_ticket("t1"), "another-arbiters-1", Placement("gpu1", Start.WARM, {"num_ctx": 4096}), now=1)
    assert "t1" in s.running and s.servers["gpu1"].runners["m"].running == 1


def test_with_loans_no_server_is_sent_more_than_it_runs_and_whatever_waits_gets_a_slot():
    """Two workers borrowing and returning at random moments, with recalls that reach them late; some of their
    requests end before they are told of, and are told once, that they ran."""
    asks = [{"num_ctx": 2048}, {"num_ctx": 8192}, {}]
    for seed in range(200):
        rnd = random.Random(seed)
        s = _scheduler(ServerSpec("gpu1", 4, 1), ServerSpec("gpu2", 4, 1), loaded=())
        holders = {"a": {}, "b": {}}  # each worker's loans, as it knows them
        recalls, running, count, now = [], set(), 0, 0.0
        for _ in range(300):
            now += rnd.random() * 0.3
            roll = rnd.random()
            grants = []
            usable = [(h, loan) for h, loans in holders.items() for loan in loans.values() if loan.in_use < loan.slots]
            if roll < 0.3:
                count += 1
                ticket = _ticket(f"t{count}", rnd.choice(["alice", "bob"]), asked=dict(rnd.choice(asks)))
                grants = s.submit(ticket, now)
            elif roll < 0.5 and usable:
                _, loan = rnd.choice(usable)
                count += 1
                if rnd.random() < 0.3:  # it ran and ended before its worker told of it
                    s.ran(Share(rnd.choice(["alice", "bob"])), "m", loan.server, rnd.randint(1, 3), rnd.random(), now)
                else:
                    _on_loan(s, _ticket(f"t{count}", rnd.choice(["alice", "bob"])), loan, now)
                    running.add(f"t{count}")
            elif roll < 0.8 and running:
                ended = rnd.choice(sorted(running))
                running.discard(ended)
                grants = s.end(ended, now)
            elif roll < 0.9 and recalls:
                loan = recalls.pop(rnd.randrange(len(recalls)))  # the worker hears of it now, and gives it back
                del holders[loan.holder][loan.id]
                grants = s.returned(loan.id, now)
            else:
                grants = _refreshed_at_random(s, rnd, now)
            running |= set(_granted(grants))
            recalls += s.recall()
            for loan in s.lend(holders, now):
                holders[loan.holder][loan.id] = loan
            assert s.running.keys() == running
            _assert_counted_in(s)
            for server in s.servers.values():
                for runner in server.runners.values():
                    assert runner.running >= 0 and runner.lent >= 0
                    assert runner.running + runner.lent <= server.spec.num_parallel, seed
            assert s.running or recalls or not s.waiting, (seed, list(s.waiting))
        for loan in recalls:
            running |= set(_granted(s.returned(loan.id, now)))
        assert s.running or not s.waiting, seed


def test_a_request_naming_no_server_the_scheduler_knows_is_refused_at_once():
    scheduler = Scheduler([ServerSpec("gpu1")])
    with pytest.raises(Overloaded) as refused:
        scheduler.submit(Ticket("t1", Share("alice"), "m", ("gpu9",)), 0.0)
    assert "gpu9" in refused.value.message and not scheduler.waiting


def test_a_front_end_naming_a_fresh_end_user_each_request_gets_its_keys_share_not_one_share_a_name():
    s = _scheduler(ServerSpec("gpu1", num_parallel=20), loaded=("m",))
    flood = [Ticket(f"w{n}", Share("webui", end_user=f"fresh-{n}"), "m", ("gpu1",)) for n in range(200)]
    granted = []
    for n in range(200):
        granted += _granted(s.submit(flood[n], now=0))
        granted += _granted(s.submit(_ticket(f"s{n}", "script", candidates=("gpu1",)), now=0))
    for step in range(1, 5):  # slots free and are handed on by fair share: about half each
        for ticket_id in list(s.running):
            granted += _granted(s.end(ticket_id, now=step))
    later = granted[20:]
    assert abs(sum(t.startswith("s") for t in later) - len(later) / 2) <= 2, later
    assert len({t.share.principal for t in s.waiting.values()}) == 2


def test_a_keys_end_users_share_its_queue_bound():
    s = _scheduler(ServerSpec("gpu1", num_parallel=1), bounds=Bounds(max_queued_per_principal=3))
    for n in range(4):
        s.submit(Ticket(f"w{n}", Share("webui", end_user=f"u{n}"), "m", ("gpu1",)), now=0)
    with pytest.raises(RateLimited):
        s.submit(Ticket("w4", Share("webui", end_user="u4"), "m", ("gpu1",)), now=0)


def test_what_the_scheduler_keeps_per_model_name_is_bounded():
    s = _scheduler(ServerSpec("gpu1", num_parallel=4))
    for n in range(3 * MODELS_KEPT):
        model = f"made-up-{n}"
        s.submit(_ticket(f"t{n}", model=model, candidates=("gpu1",)), now=n)
        s.end(f"t{n}", now=n + 0.5)
    kept = [s.last_interactive, s.last_short, s.estimates._slot, s.estimates._ends]
    assert all(len(table) <= MODELS_KEPT for table in kept), [len(table) for table in kept]
    assert f"made-up-{3 * MODELS_KEPT - 1}" in s.estimates._slot  # the newest are the ones kept


def test_teams_share_by_their_weights_then_their_keys_by_theirs_and_keys_in_no_team_stand_as_teams():
    shares = {"a1": Share("a1", team="apps"), "a2": Share("a2", team="apps"), "a3": Share("a3", weight=2, team="apps"),
              "r1": Share("r1", team="research", team_weight=2), "solo": Share("solo")}
    used = _run_backlogged(_scheduler(default_slot_seconds=1.0), shares, seconds=800)
    total = sum(used.values())
    # apps 1, research 2, solo (in no team) 1: a quarter, a half, a quarter.
    assert (used["a1"] + used["a2"] + used["a3"]) / total == pytest.approx(0.25, abs=0.02)
    assert used["r1"] / total == pytest.approx(0.5, abs=0.02) and used["solo"] / total == pytest.approx(0.25, abs=0.02)
    assert used["a3"] == pytest.approx(2 * used["a1"], rel=0.1) and used["a1"] == pytest.approx(used["a2"], rel=0.1)


def test_a_teams_keys_share_one_teams_part_however_many_of_them_wait():
    shares = {f"a{n}": Share(f"a{n}", team="apps") for n in range(6)} | {"solo": Share("solo")}
    used = _run_backlogged(_scheduler(default_slot_seconds=1.0), shares, seconds=400)
    total = sum(used.values())
    assert used["solo"] / total == pytest.approx(0.5, abs=0.02)  # six keys of one team: one team's half
