"""The messages between workers and the arbiter: what goes out comes back the same; what is no message is said."""

import pytest

from ollama_proxy.errors import Overloaded, RateLimited
from ollama_proxy.scheduler.decisions.core import Grant, Ticket
from ollama_proxy.scheduler.decisions.fairness import BATCH, Share
from ollama_proxy.scheduler.decisions.servers import Placement, ServerSpec, Start
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from ollama_proxy.scheduler.transport import wire

TICKET = Ticket("t1", Share("team", 2.0, BATCH, "ann"), "llama3.2:latest", ("gpu1", "gpu2"), {"num_ctx": 8192},
                frozenset({"num_ctx"}))
SPECS = [ServerSpec("gpu1", 2, 1, None), ServerSpec("gpu2", 4, 2, 6, prompt_cache_mib=0,
                                                     model_parallel=(("qwen3:32b", 1),))]


def test_a_ticket_its_servers_and_where_it_runs_come_back_as_they_went():
    placement = Placement("gpu2", Start.RELOAD, {"num_ctx": 8192})
    message = wire.decode(wire.encode(wire.running(TICKET, placement, SPECS)))
    assert wire.ticket_of(message) == TICKET
    assert wire.specs_of(message) == SPECS
    assert wire.placement_of(message) == placement


def test_a_share_without_an_end_user_from_an_older_worker_is_its_principals_own_and_a_bad_one_is_refused():
    message = wire.submit(TICKET)
    del message["end_user"]
    assert wire.ticket_of(message).share == Share("team", 2.0, BATCH)
    with pytest.raises(wire.BadMessage):
        wire.ticket_of({**message, "end_user": ["ann"]})
    report = wire.ran(Share("webui", end_user="bob"), "m", "gpu1", 1, 0.5)
    assert wire.ran_of(wire.decode(wire.encode(report)))[0] == Share("webui", end_user="bob")


@pytest.mark.parametrize("servers", [[["gpu1", 2, 1, None]], [["gpu1", 2, 1, None, True]]])
def test_servers_named_by_an_older_worker_without_their_prompt_cache_use_llama_servers_default(servers):
    message = {**wire.submit(TICKET), "servers": servers}
    assert wire.specs_of(message) == [ServerSpec("gpu1", 2, 1, None, prompt_cache_mib=8192, model_parallel=())]


def test_an_embedding_says_so():
    ticket = Ticket("t1", Share("a"), "m", ("gpu1",), embeds=True)
    assert wire.ticket_of(wire.decode(wire.encode(wire.submit(ticket)))).embeds
    assert not wire.ticket_of(wire.submit(TICKET)).embeds


def test_a_grant_comes_back_as_it_went():
    granted = Grant("t1", Placement("gpu1", Start.LOAD, {}, evict="qwen3:8b"), 1.5)
    assert wire.grant_of(wire.decode(wire.encode(wire.grant(granted)))) == granted
    assert "cached" not in wire.grant(granted)  # no estimate made: none said
    estimated = Grant("t1", Placement("gpu1", Start.WARM, {}), 0.0, cached=3990)
    assert wire.grant_of(wire.decode(wire.encode(wire.grant(estimated)))) == estimated


@pytest.mark.parametrize("cached", ["3990", -1, True, 1.5, None])
def test_a_grant_whose_estimate_is_no_count_or_missing_has_none(cached):
    message = {**wire.grant(Grant("t1", Placement("gpu1", Start.WARM, {}), 0.0)), "cached": cached}
    assert wire.grant_of(message).cached is None


def test_a_sync_holds_what_runs_and_what_waits():
    message = wire.decode(wire.encode(wire.sync([wire.running(TICKET, Placement("gpu1", Start.WARM, {}))],
                                                [wire.submit(TICKET)])))
    assert [wire.ticket_of(m).id for m in message["running"] + message["waiting"]] == ["t1", "t1"]


@pytest.mark.parametrize("line", [b"not json", b"[1, 2]", b'{"id": "x"}', b'{"op": 3}'])
def test_a_line_that_is_no_message_is_said_to_be_bad(line):
    with pytest.raises(wire.BadMessage):
        wire.decode(line)


def test_a_refusal_comes_back_as_the_same_error():
    late = wire.error_of(wire.refused("t1", RateLimited("too many waiting", retry_after=7)))
    assert isinstance(late, RateLimited) and late.retry_after == 7
    full = Overloaded("full")
    full.retry_after = 3
    assert isinstance(wire.error_of(wire.refused("t1", full)), Overloaded)


def test_a_ran_report_with_counts_that_are_no_numbers_is_bad():
    report = wire.ran(Share("ann"), "m", "gpu1", 3, 1.5)
    assert wire.ran_of(report)[3:] == (3, 1.5)
    with pytest.raises(wire.BadMessage):
        wire.ran_of({**report, "requests": "many"})


def test_a_tickets_prompt_chain_comes_back_as_it_went_and_a_malformed_one_is_bad():
    from ollama_proxy.scheduler.decisions.prefix import chain_of

    chain = chain_of("/api/chat", {"messages": [{"role": "user", "content": f"turn {i}"} for i in range(50)]})
    ticket = Ticket("t1", Share("alice"), "m", ("gpu1",), prefix=chain)
    message = wire.decode(wire.encode(wire.submit(ticket)))
    assert wire.ticket_of(message).prefix == chain
    with pytest.raises(wire.BadMessage, match="prefix"):
        wire.ticket_of({**message, "prefix": [[0, "x", "many"]]})


@pytest.mark.parametrize("value, read", [
    ([4300, 3990, 0.25], PromptRead(4300, 3990, 0.25)), ([4300, None, 0.25], PromptRead(4300, None, 0.25)),
    (None, None), ([1200, 0.25], None), (["1200", 0, 0.25], None), ([-1, 0, 0.25], None),
    ([True, 0, 0.25], None), ([10, 0, 1e9], None), ([10, 11, 0.25], None), ([10, -1, 0.25], None),
    ([10, "3", 0.25], None),
])
def test_the_prompt_read_an_end_tells_of_is_taken_only_when_well_formed(value, read):
    assert wire.read_of({"op": "end", "id": "t1", "prompt": value}) == read


def test_an_end_says_what_its_answer_read():
    message = wire.decode(wire.encode(wire.end("t1", 1.5, PromptRead(4300, 3990, 0.25))))
    assert (message["load_seconds"], wire.read_of(message)) == (1.5, PromptRead(4300, 3990, 0.25))
    assert "prompt" not in wire.end("t1", None, None)


def test_a_loan_says_what_it_is_for_and_an_older_arbiters_is_for_short_interactive_prompts():
    from ollama_proxy.scheduler.decisions.tickets import Loan

    loan = Loan("l1", "w1", "gpu1", "m", {"num_ctx": 4096}, 2, classes=("interactive",), prompt_below=1024)
    held = wire.loan_of(wire.decode(wire.encode(wire.lend(loan))))
    assert (held.id, held.server, held.model, held.options, held.slots) == ("l1", "gpu1", "m", {"num_ctx": 4096}, 2)
    assert held.admits("interactive", 1023) and not held.admits("interactive", 1024)
    assert not held.admits(BATCH, 10)
    older = {key: value for key, value in wire.lend(loan).items() if key not in ("classes", "prompt_below")}
    assert wire.loan_of(older).admits("interactive", 100) and not wire.loan_of(older).admits("interactive", 2000)
    with pytest.raises(wire.BadMessage):
        wire.loan_of({**wire.lend(loan), "classes": ["gold"]})
    with pytest.raises(wire.BadMessage):
        wire.loan_of({**wire.lend(loan), "slots": "two"})


def test_a_share_in_a_team_goes_over_the_wire_whole_and_an_older_workers_share_names_none():
    share = Share("alice", 2.0, "batch", "ann", team="apps", team_weight=3.0)
    assert wire.share_of(wire._share(share)) == share
    assert wire.share_of({"principal": "bob", "weight": 1, "class": "interactive"}).team is None
    with pytest.raises(wire.BadMessage):
        wire.share_of({"principal": "bob", "weight": 1, "class": "interactive", "team": "apps", "team_weight": 0})


def test_a_share_goes_over_the_wire_with_its_keys_owner_and_an_older_workers_names_none():
    share = Share("key:12", name="mia-laptop", owner="mia")
    assert wire.share_of(wire._share(share)) == share
    assert wire.share_of({"principal": "key:12", "weight": 1, "class": "interactive"}).owner is None
    with pytest.raises(wire.BadMessage):
        wire.share_of({"principal": "key:12", "weight": 1, "class": "interactive", "owner": 7})


def test_a_share_goes_over_the_wire_by_id_with_its_name_and_an_older_workers_names_none():
    share = Share("key:12", 1.0, "interactive", team="team:3", name="alice")
    assert wire.share_of(wire._share(share)) == share and wire.share_of(wire._share(share)).who == "alice"
    older = wire.share_of({"principal": "alice", "weight": 1, "class": "interactive"})  # its principal: the name
    assert (older.name, older.who) == (None, "alice")
    with pytest.raises(wire.BadMessage):
        wire.share_of({"principal": "key:12", "weight": 1, "class": "interactive", "name": 12})
