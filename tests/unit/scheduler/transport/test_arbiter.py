"""The arbiter on its own: messages in, answers out, a clock of the test's; no socket, no other worker."""

import logging

import gevent
import pytest

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.estimates import Estimates
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.prefix import chain_of
from ollama_proxy.scheduler.decisions.servers import Loaded, Placement, ServerSpec, Start
from ollama_proxy.scheduler.transport import wire
from ollama_proxy.scheduler.transport.arbiter import Arbiter
from tests.fakes.clock import ManualClock


class Worker:
    """What the arbiter sends one worker, kept."""

    def __init__(self):
        self.tickets: set[str] = set()
        self.sent: list[dict] = []

    def send(self, message: dict) -> None:
        self.sent.append(message)

    def ops(self, op: str) -> list[str]:
        return [m["id"] for m in self.sent if m["op"] == op]


@pytest.fixture
def arbiter():
    scheduler = Scheduler([ServerSpec("gpu1", num_parallel=2, max_loaded_models=1)], Bounds(load_gather=0))
    return Arbiter(scheduler, ManualClock())


def _ticket(ticket_id: str, model: str = "m", candidates=("gpu1",), principal: str = "alice") -> Ticket:
    return Ticket(ticket_id, Share(principal), model, tuple(candidates))


def _running(ticket: Ticket, server: str = "gpu1", start: str = "warm", evict: str | None = None,
             specs=()) -> dict:
    return {**wire.running(ticket, Placement(server, Start(start), {"num_ctx": 4096}), specs), "evict": evict}


def test_a_request_reannounced_with_an_eviction_already_done_is_adopted(arbiter):
    """What a worker says after the arbiter's worker died while a request that evicted another model ran."""
    worker = Worker()
    arbiter.handle(worker, wire.sync([_running(_ticket("t1", "big"), start="load", evict="small")], []))
    state = arbiter.scheduler.servers["gpu1"]
    assert set(state.runners) == {"big"} and state.runners["big"].running == 1
    assert "t1" in arbiter.scheduler.running and worker.tickets == {"t1"}
    arbiter.handle(worker, {"op": "end", "id": "t1"})
    assert state.runners["big"].running == 0


def test_a_request_on_a_server_the_arbiter_was_not_built_with_is_adopted_and_its_server_learned(arbiter):
    worker = Worker()
    spec = ServerSpec("gpu2", num_parallel=1, max_loaded_models=1)
    arbiter.handle(worker, wire.sync([_running(_ticket("t1", candidates=("gpu2",)), "gpu2", specs=[spec])], []))
    assert arbiter.scheduler.servers["gpu2"].spec == spec
    arbiter.handle(worker, wire.submit(_ticket("t2", candidates=("gpu2",)), [spec]))
    assert worker.ops("grant") == []  # its one slot is taken
    arbiter.handle(worker, {"op": "end", "id": "t1"})
    assert worker.ops("grant") == ["t2"]


def test_a_request_for_a_server_only_its_own_configuration_names_is_granted_there(arbiter):
    """Two configurations behind one arbiter (before and after a reload; instances sharing Redis)."""
    worker = Worker()
    spec = ServerSpec("gpu2", num_parallel=1, max_loaded_models=1)
    arbiter.handle(worker, wire.submit(_ticket("t1", candidates=("gpu2",)), [spec]))
    assert [m["server"] for m in worker.sent if m["op"] == "grant"] == ["gpu2"]


@pytest.mark.parametrize("message", [
    {"op": "submit", "id": "bad"},  # no ticket
    {"op": "submit", "id": "bad", "principal": "a", "weight": "heavy", "class": "interactive", "model": "m",
     "candidates": ["gpu1"], "asked": {}, "enforced": []},
    {"op": "submit", "id": "bad", "principal": "a", "weight": 1, "class": "vip", "model": "m",
     "candidates": ["gpu1"], "asked": {}, "enforced": []},
    {"op": "sync", "id": "", "running": [{"op": "running", "id": "r"}], "waiting": []},
    {"op": "running", "id": "r", "principal": "a", "weight": 1, "class": "interactive", "model": "m",
     "candidates": ["gpu1"], "asked": {}, "enforced": [], "server": "gpu1", "start": "sideways", "options": {}},
    {"op": "ran", "id": "", "principal": "a", "weight": 1, "class": "interactive"},
    {"op": "teleport", "id": "x"},
])
def test_a_bad_message_is_dropped_and_logged_and_the_next_one_is_heard(arbiter, message, caplog):
    worker = Worker()
    with caplog.at_level(logging.WARNING, "ollama_proxy.scheduler.transport.arbiter"):
        arbiter.handle(worker, message)
    assert "dropped a scheduler message" in caplog.text
    assert "bad" not in arbiter.scheduler.waiting and "r" not in arbiter.scheduler.running
    arbiter.handle(worker, wire.submit(_ticket("t1")))
    assert worker.ops("grant") == ["t1"]


def test_a_sync_ends_what_the_worker_no_longer_holds_and_queues_what_it_waits_for(arbiter):
    worker = Worker()
    for ticket_id in ("t1", "t2"):
        arbiter.handle(worker, wire.submit(_ticket(ticket_id)))
    arbiter.handle(worker, wire.submit(_ticket("t3")))
    assert worker.ops("grant") == ["t1", "t2"] and "t3" in arbiter.scheduler.waiting
    # The line was lost while t1 ended and t3's client left; t4 came meanwhile.
    arbiter.handle(worker, wire.sync([_running(_ticket("t2"))], [wire.submit(_ticket("t4"))]))
    assert set(arbiter.scheduler.running) == {"t2", "t4"} and not arbiter.scheduler.waiting
    assert worker.tickets == {"t2", "t4"} and worker.ops("grant")[-1] == "t4"


def test_a_sync_naming_as_waiting_a_request_already_granted_gets_its_grant_again(arbiter):
    worker = Worker()
    arbiter.handle(worker, wire.submit(_ticket("t1")))
    arbiter.handle(worker, wire.sync([], [wire.submit(_ticket("t1"))]))  # its grant never reached the worker
    assert worker.ops("grant") == ["t1", "t1"]
    assert arbiter.scheduler.servers["gpu1"].runners["m"].running == 1  # one slot, not two


def test_a_fault_of_the_arbiters_own_refuses_that_request_and_the_next_ones_are_heard(arbiter, monkeypatch, caplog):
    worker = Worker()
    real = arbiter.scheduler.submit

    def broken(ticket, now):
        if ticket.id == "t1":
            raise RuntimeError("a bug")
        return real(ticket, now)
    monkeypatch.setattr(arbiter.scheduler, "submit", broken)
    with caplog.at_level(logging.ERROR, "ollama_proxy.scheduler.transport.arbiter"):
        arbiter.handle(worker, wire.submit(_ticket("t1")))
    assert worker.ops("refused") == ["t1"] and "t1" not in worker.tickets
    arbiter.handle(worker, wire.submit(_ticket("t2")))
    assert worker.ops("grant") == ["t2"]


def test_a_worker_whose_line_broke_mid_decision_does_not_stop_the_grants_to_the_others(arbiter):
    class Broken(Worker):
        def send(self, message):
            raise OSError("the line is closing")
    broken, fine = Broken(), Worker()
    arbiter.handle(broken, wire.submit(_ticket("t1")))
    arbiter.handle(fine, wire.submit(_ticket("t2")))
    assert fine.ops("grant") == ["t2"]
    arbiter.gone(broken)
    assert set(arbiter.scheduler.running) == {"t2"}


def test_a_request_held_back_by_a_bound_is_granted_once_it_runs_out_with_nothing_else_happening():
    clock = ManualClock()
    specs = [ServerSpec("gpu1", num_parallel=1, max_loaded_models=1), ServerSpec("gpu2", num_parallel=1)]
    scheduler = Scheduler(specs, Bounds(prefix_hold=1.0, load_gather=0),
                          Estimates(default_slot_seconds=1.0, default_prefill_rate=100))
    for server in scheduler.servers.values():
        server.warm("m", Loaded({}))
    arbiter, worker = Arbiter(scheduler, clock), Worker()
    conversation = chain_of("/api/chat", {"messages": [{"role": "user", "content": "x" * 8000}]})
    scheduler.submit(Ticket("a1", Share("agent"), "m", ("gpu1",), prefix=conversation), now=100)
    scheduler.end("a1", now=105)
    scheduler.submit(Ticket("b1", Share("other"), "m", ("gpu1",)), now=105)  # gpu1 busy, holding a's conversation
    clock.now = 105.2
    again = chain_of("/api/chat", {"messages": [{"role": "user", "content": "x" * 8000}, {"role": "user",
                                                                                          "content": "more"}]})
    arbiter.handle(worker, wire.submit(Ticket("a2", Share("agent"), "m", ("gpu1", "gpu2"), prefix=again)))
    ticking = gevent.spawn(arbiter._tick_forever)
    try:
        gevent.sleep(0.1)
        assert worker.ops("grant") == []  # it waits for the server that holds its conversation, up to prefix_hold
        clock.now = 105.2 + 1.1  # ... and no request arrives or ends meanwhile
        gevent.sleep(0.6)
        assert worker.ops("grant") == ["a2"]
    finally:
        ticking.kill()


def test_a_new_arbiter_grants_nothing_until_every_worker_expected_has_said_what_it_holds(arbiter):
    """A fresh leader after Redis came back: an instance that scheduled alone says what it runs before any grant."""
    early, late = Worker(), Worker()
    early.peer, late.peer = "instance-a/1", "instance-b/1"
    arbiter.scheduler.hold_until = arbiter.clock() + 8
    arbiter.handle(early, wire.sync([], [wire.submit(_ticket("wants-b"))]))  # heard before it was expected
    arbiter.expect({"instance-a/1", "instance-b/1"})
    assert arbiter.holding() and early.ops("grant") == []
    # instance b ran a request of another model on gpu1 while it scheduled alone: gpu1 must finish it first
    arbiter.handle(late, wire.sync([_running(_ticket("alone", model="other"))], []))
    assert not arbiter.holding()
    assert early.ops("grant") == [] and "wants-b" in arbiter.scheduler.waiting  # one model at a time on gpu1


def test_expecting_only_workers_already_heard_ends_the_hold_at_once(arbiter):
    worker = Worker()
    worker.peer = "instance-a/1"
    arbiter.scheduler.hold_until = arbiter.clock() + 8
    arbiter.handle(worker, wire.sync([], [wire.submit(_ticket("t1"))]))
    assert worker.ops("grant") == []
    arbiter.expect({"instance-a/1"})
    assert not arbiter.holding() and worker.ops("grant") == ["t1"]


def test_a_grant_tells_the_prompt_tokens_the_mirror_expects_from_cache_in_ollamas_tokens(monkeypatch):
    """The proxy's estimate, told to the worker with the grant: never mistaken for what Ollama says."""
    scheduler = Scheduler([ServerSpec("gpu1", num_parallel=1, max_loaded_models=1)], Bounds(load_gather=0))
    scheduler.servers["gpu1"].warm("m", Loaded({}))
    monkeypatch.setattr(scheduler.estimates, "scale", lambda model: 1.5)  # Ollama's tokens per estimated token
    clock = ManualClock()
    arbiter, worker = Arbiter(scheduler, clock), Worker()
    said = [{"role": "user", "content": "tell me about the sky " * 300}]
    arbiter.handle(worker, wire.submit(Ticket("a1", Share("ann"), "m", ("gpu1",), prefix=chain_of(
        "/api/chat", {"messages": said}))))
    arbiter.handle(worker, wire.end("a1", None, None))
    clock.advance(1.0)  # the next turn, a moment later
    again = chain_of("/api/chat", {"messages": [*said, {"role": "assistant", "content": "blue"},
                                                {"role": "user", "content": "why?"}]})
    arbiter.handle(worker, wire.submit(Ticket("a2", Share("ann"), "m", ("gpu1",), prefix=again)))
    held = scheduler.running["a2"].cached  # in the mirror's estimated tokens
    arbiter.handle(worker, wire.submit(_ticket("b1")))  # no prompt the mirror follows: no estimate
    arbiter.handle(worker, wire.end("a2", None, None))
    grants = {m["id"]: m for m in worker.sent if m["op"] == "grant"}
    assert grants["a1"]["cached"] == 0  # the mirror held nothing of it
    assert grants["a2"]["cached"] == round(held * 1.5) and held > 1000  # the first turn, held by the server
    assert "cached" not in grants["b1"]


def test_a_grant_said_again_tells_the_estimate_again(arbiter):
    worker = Worker()
    ticket = Ticket("t1", Share("ann"), "m", ("gpu1",), prefix=chain_of("/api/chat", {"messages": []}))
    arbiter.handle(worker, wire.submit(ticket))
    arbiter.handle(worker, wire.sync([], [wire.submit(ticket)]))  # its grant never reached the worker
    assert [m.get("cached") for m in worker.sent if m["op"] == "grant"] == [0, 0]
