"""The arbiter and its clients: the arbiter's own worker by calls, another worker over a real Unix socket."""

import json
import os
import socket as plain
import time
import uuid

import gevent
import gevent.event
import pytest
from gevent import socket as gsocket

from ollama_proxy.errors import Overloaded, RateLimited
from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.fairness import BATCH, Share
from ollama_proxy.scheduler.decisions.prefix import chain_of
from ollama_proxy.scheduler.decisions.servers import ServerSpec, Start
from ollama_proxy.scheduler.transport.arbiter import Arbiter
from ollama_proxy.scheduler.transport.client import REPORT_AFTER, ClientLeft, SchedulerClient
from ollama_proxy.scheduler.transport.inprocess import InProcessLink
from ollama_proxy.scheduler.transport.local import LocalScheduler, SocketLink, address

WORKERS = ["the arbiter's worker", "another worker"]


def _build(bounds=None, num_parallel=2, listed=False):
    def build():
        scheduler = Scheduler([ServerSpec("gpu1", num_parallel=num_parallel)], bounds or Bounds(load_gather=0))
        if listed:  # the server said it has nothing loaded, as /api/ps does
            scheduler.refresh("gpu1", {}, 0.0)
        return scheduler
    return build


def _ticket(ticket_id: str, principal: str = "alice") -> Ticket:
    return Ticket(ticket_id, Share(principal), "m", ("gpu1",))


def _wait_for(condition, timeout: float = 5.0) -> None:
    with gevent.Timeout(timeout):
        while not condition():
            gevent.sleep(0.01)


@pytest.fixture
def instance(tmp_path):
    made = []
    instance_name = f"test-{uuid.uuid4().hex}"  # the workers of one instance: one scheduler

    def make(bounds=None, max_wait=5.0, num_parallel=2, listed=False):
        local = LocalScheduler(str(tmp_path), _build(bounds, num_parallel, listed), max_wait, instance=instance_name)
        made.append(local)
        return local
    yield make
    waiting = [local for local in made[1:] if local._lock_fd is None]  # the first took the lock
    for local in made:
        local.resign()
    for local in waiting:  # a worker still waiting for the lock takes it now: let it, then let go
        _wait_for(lambda local=local: local.arbiter is not None)
        local.resign()


@pytest.fixture(params=WORKERS)
def client_of(request, instance):
    """A scheduler client in the worker the test names, the first of the instance being the arbiter."""
    def make(bounds=None, max_wait=5.0, num_parallel=2, listed=False):
        arbiter = instance(bounds, max_wait, num_parallel, listed)
        client = arbiter.client()
        _wait_for(lambda: arbiter.arbiter is not None)
        if request.param == WORKERS[1]:
            client = instance(bounds, max_wait, num_parallel, listed).client()  # the lock is taken: this one asks
        return client
    return make


def _admit_later(client, ticket, **kw):
    return gevent.spawn(client.admit, ticket, **kw)


def test_a_third_request_waits_for_a_slot_and_gets_it_when_one_ends(client_of):
    client = client_of()
    assert client.admit(_ticket("t1")).placement.server == "gpu1"
    client.admit(_ticket("t2"))
    third = _admit_later(client, _ticket("t3"))
    gevent.sleep(0.2)
    assert not third.ready()
    client.end("t1")
    assert third.get(timeout=2).ticket == "t3"


def test_a_models_first_load_is_granted_by_the_arbiters_own_tick_once_its_gather_is_over(client_of):
    """Nothing else happens after the first request: the arbiter's tick hands out its load."""
    client = client_of(Bounds(load_gather=0.3), listed=True)
    first = _admit_later(client, _ticket("t1"))
    gevent.sleep(0.15)
    assert not first.ready()
    assert first.get(timeout=2).placement.server == "gpu1"


def test_a_refusal_comes_back_as_the_same_error(client_of):
    client = client_of(Bounds(max_queued_per_principal=1, load_gather=0))
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2"))
    waiting = _admit_later(client, _ticket("t3"))
    gevent.sleep(0.1)
    with pytest.raises(RateLimited) as refused:
        client.admit(_ticket("t4"))
    assert refused.value.status == 429 and "max_queued_per_principal" in refused.value.message
    waiting.kill()


def test_a_client_that_leaves_while_waiting_is_dropped_and_never_granted(client_of):
    client = client_of()
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2"))
    hang_up = {}

    def watch(on_gone):
        hang_up["now"] = on_gone
        return lambda: None
    gone = _admit_later(client, _ticket("gone"), watch=watch)
    after = _admit_later(client, _ticket("after", "bob"))
    gevent.sleep(0.1)
    hang_up["now"]()
    with pytest.raises(ClientLeft):
        gone.get(timeout=2)
    gevent.sleep(0.1)
    client.end("t1")
    assert after.get(timeout=2).ticket == "after"


def test_a_request_that_waits_past_max_wait_gets_a_503(client_of):
    client = client_of(Bounds(max_wait=0.3, load_gather=0), max_wait=0.3)
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2"))
    with pytest.raises(Exception) as late:
        client.admit(_ticket("t3"))
    assert getattr(late.value, "status", None) == 503
    assert late.value.retry_after >= 1  # the arbiter's estimate of the drain, not the worker's own max_wait


def test_a_new_arbiter_learns_the_slots_the_workers_hold(instance):
    first = instance()
    client = first.client()
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2"))
    first.resign()  # as its worker does on exit: the lock is free, the clients reconnect
    first._pid = 0
    successor = first.client()  # what another worker does on its first request: it becomes the arbiter
    successor_arbiter_ready = gevent.spawn(lambda: successor.admit(_ticket("probe", "bob")))
    gevent.sleep(0.3)
    assert not successor_arbiter_ready.ready()  # the re-announced slots count: gpu1 is still full
    client.end("t1")
    assert successor_arbiter_ready.get(timeout=2).ticket == "probe"


def test_the_arbiters_own_worker_asks_by_calls_and_another_over_the_socket(instance):
    arbiter = instance()
    own = arbiter.client()
    _wait_for(lambda: arbiter.arbiter is not None)
    other = instance().client()
    own.admit(_ticket("t1"))
    other.admit(_ticket("t2", "bob"))
    assert isinstance(own._link, InProcessLink) and isinstance(other._link, SocketLink)
    assert len(arbiter._workers) == 1  # only the other worker connected to the arbiter's socket


def test_a_worker_that_asked_by_calls_asks_the_next_arbiter_over_its_socket(instance):
    first = instance()
    own = first.client()
    _wait_for(lambda: first.arbiter is not None)
    successor = instance()
    successor_client = successor.client()
    own.admit(_ticket("t1"))
    own.admit(_ticket("t2"))
    first.resign()  # the arbiter's worker goes; the other takes the lock, and hears of the two slots held
    _wait_for(lambda: successor.arbiter is not None)
    waiting = gevent.spawn(successor_client.admit, _ticket("probe", "bob"))
    gevent.sleep(0.8)  # past the takeover hold
    assert not waiting.ready()
    own.end("t1")
    assert waiting.get(timeout=3).ticket == "probe"


def test_messages_the_socket_cannot_take_at_once_are_sent_in_order_by_the_writer():
    ours, theirs = gsocket.socketpair(plain.AF_UNIX, plain.SOCK_STREAM)
    ours.setsockopt(plain.SOL_SOCKET, plain.SO_SNDBUF, 4096)
    link = SocketLink(ours)
    for n in range(2000):  # far more than the socket's buffer holds: most wait for the writer
        link.send({"op": "end", "id": f"{n:06d}", "pad": "x" * 40})
    lines = theirs.makefile("rb")
    ids = [json.loads(lines.readline())["id"] for _ in range(2000)]
    assert ids == [f"{n:06d}" for n in range(2000)]
    link.close()
    theirs.close()


def test_a_process_of_another_user_is_not_heard(instance, monkeypatch):
    arbiter = instance()
    arbiter.client()
    _wait_for(lambda: arbiter.arbiter is not None)
    stranger = gsocket.socket(plain.AF_UNIX, plain.SOCK_STREAM)
    stranger.settimeout(5)
    stranger.connect(address(arbiter.instance))
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # as the arbiter sees it: the peer is someone else
    stranger.sendall(b'{"op": "cancel", "id": "x"}\n')
    try:
        hung_up = stranger.recv(1) == b""
    except ConnectionResetError:  # what it sent was never read
        hung_up = True
    assert hung_up
    assert arbiter._workers == set()
    stranger.close()


def test_any_worker_may_ask_the_arbiter_what_runs_and_what_waits(client_of):
    client = client_of()
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2", "bob"))
    waiting = _admit_later(client, _ticket("t3", "carol"))
    gevent.sleep(0.1)
    state = client.status(timeout=2)
    assert [run["principal"] for run in state["running"]] == ["alice", "bob"]
    assert [(wait["principal"], wait["servers"]) for wait in state["waiting"]] == [("carol", ["gpu1"])]
    assert state["servers"][0]["busy"] == 2
    client.end("t1")  # the question took a line of its own: grants still reach the worker's
    assert waiting.get(timeout=2).ticket == "t3"


def _unreachable():
    raise OSError("no arbiter listens")


class _SilentLink:
    """An arbiter that takes the question and never answers."""

    closed = False

    def send(self, message: dict) -> None:
        pass

    def messages(self):
        gevent.event.Event().wait()
        yield {}

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("silent", [False, True])
def test_a_status_question_nobody_answers_gives_none_within_its_timeout(silent):
    link = _SilentLink()
    client = SchedulerClient(lambda receive: link if silent else _unreachable(), max_wait=5.0)
    with gevent.Timeout(2):  # the test fails, rather than hangs, if the question's own bound did not hold
        assert client.status(timeout=0.2) is None
    assert link.closed is silent


def _lent(client) -> int:
    state = client.status(timeout=2)
    return sum(runner["lent"] for server in state["servers"] for runner in server["models"])


def _used(client, ticket_id: str) -> None:
    client.admit(_ticket(ticket_id))
    client.end(ticket_id)


def test_while_nothing_waits_a_worker_starts_requests_on_slots_lent_to_it_and_tells_the_arbiter_after(
        client_of, monkeypatch):
    heard = []
    handle = Arbiter.handle
    monkeypatch.setattr(Arbiter, "handle", lambda self, worker, message: (heard.append(message["op"]),
                                                                         handle(self, worker, message))[1])
    client = client_of(num_parallel=6)
    _used(client, "load")  # the model loads: there was nothing to lend
    _wait_for(lambda: _lent(client) == 3)  # one worker borrows half the slots; the rest stay free
    heard.clear()
    _used(client, "quick")  # it ends before the arbiter is told that it started: told once, that it ran
    _wait_for(lambda: "ran" in heard)
    granted = client.admit(_ticket("t1"))
    assert granted.placement.server == "gpu1" and granted.placement.start is Start.WARM and granted.waited == 0
    _wait_for(lambda: "start" in heard)  # it runs on past REPORT_AFTER: the arbiter is told
    assert client.status(timeout=2)["running"][0]["principal"] == "alice"
    client.end("t1")
    _wait_for(lambda: "end" in heard)
    assert [op for op in heard if op != "status"] == ["ran", "start", "end"]  # told, never asked: no submit
    assert _lent(client) == 3


def test_requests_that_end_before_the_arbiter_is_told_of_them_are_told_together(client_of, monkeypatch):
    heard = []
    handle = Arbiter.handle
    monkeypatch.setattr(Arbiter, "handle", lambda self, worker, message: (heard.append(dict(message)),
                                                                         handle(self, worker, message))[1])
    client = client_of(num_parallel=6)
    _used(client, "load")
    _wait_for(lambda: _lent(client) == 3)
    heard.clear()
    for n in range(5):
        _used(client, f"quick{n}")
    _wait_for(lambda: any(message["op"] == "ran" for message in heard))
    gevent.sleep(2 * REPORT_AFTER)
    told = [message for message in heard if message["op"] != "status"]
    assert [(m["op"], m["principal"], m["model"], m["server"], m["requests"]) for m in told] == [
        ("ran", "alice", "m", "gpu1", 5)]
    assert 0 <= told[0]["seconds"] < 5 * REPORT_AFTER


def _lent_to_and_heard(client_of, monkeypatch):
    """A client holding a loan of 3 of 6 slots, and the ops the arbiter hears from then on."""
    heard = []
    handle = Arbiter.handle
    monkeypatch.setattr(Arbiter, "handle", lambda self, worker, message: (heard.append(message["op"]),
                                                                         handle(self, worker, message))[1])
    client = client_of(num_parallel=6)
    _used(client, "load")
    _wait_for(lambda: _lent(client) == 3)
    return client, heard


def test_batch_work_asks_for_its_slot_even_with_slots_lent(client_of, monkeypatch):
    client, heard = _lent_to_and_heard(client_of, monkeypatch)
    client.admit(Ticket("job", Share("nightly", klass=BATCH), "m", ("gpu1",)))
    assert "submit" in heard and "start" not in heard


def test_a_long_prompt_asks_for_its_slot_even_with_slots_lent(client_of, monkeypatch):
    client, heard = _lent_to_and_heard(client_of, monkeypatch)
    conversation = chain_of("/api/chat", {"messages": [{"role": "user", "content": "x" * 8000}]})
    granted = client.admit(Ticket("agent-turn", Share("agent"), "m", ("gpu1",), prefix=conversation))
    assert "submit" in heard and "start" not in heard  # placed by the arbiter, where its prompt is cached
    assert granted.placement.server == "gpu1"


def test_a_lent_slot_is_called_back_when_a_request_would_wait_for_it(instance):
    arbiter = instance(num_parallel=3)
    own = arbiter.client()
    _wait_for(lambda: arbiter.arbiter is not None)
    other = instance(num_parallel=3).client()
    _used(own, "load")
    _used(other, "joins")
    _wait_for(lambda: _lent(own) == 2)  # one slot each, one free
    own.admit(_ticket("t1"))  # on its loan
    own.admit(_ticket("t2"))  # the free slot
    third = _admit_later(own, _ticket("t3"))  # the other worker's loan is called back for it
    assert third.get(timeout=3).ticket == "t3"
    state = own.status(timeout=2)
    assert len(state["running"]) == 3 and _lent(own) == 0 and state["servers"][0]["busy"] == 3
    fourth = _admit_later(other, _ticket("t4", "bob"))
    gevent.sleep(0.2)
    assert not fourth.ready()  # no slot was left: lent slots are not free ones
    own.end("t1")
    assert fourth.get(timeout=3).ticket == "t4"
    for ticket_id in ("t2", "t3"):
        own.end(ticket_id)
    other.end("t4")
    _wait_for(lambda: _lent(own) == 2)  # nothing waits: lent again


def test_a_new_arbiter_counts_the_requests_running_on_the_last_ones_loans(instance):
    first = instance(num_parallel=3)
    client = first.client()
    _wait_for(lambda: first.arbiter is not None)
    _used(client, "load")
    _wait_for(lambda: _lent(client) == 1)  # a third of three: one worker and the rest kept free
    assert client.admit(_ticket("t1")).waited == 0  # on the loan
    first.resign()
    first._pid = 0
    successor = first.client()  # another worker's first request: it becomes the arbiter, t1 is announced
    # Three people, not one principal's three at once: those would leave a slot for others' questions.
    probes = [_admit_later(successor, _ticket(f"probe{i}", f"person{i}")) for i in range(3)]
    gevent.sleep(1.0)  # past the takeover hold
    assert sum(probe.ready() for probe in probes) == 2  # three slots, one still running t1
    client.end("t1")
    gevent.joinall(probes, timeout=3)
    assert all(probe.ready() for probe in probes)


def _nowhere(receive):
    raise ConnectionRefusedError("no arbiter listens")


def test_with_no_arbiter_to_reach_a_request_gets_a_503_within_unreachable_timeout_and_the_next_at_once():
    client = SchedulerClient(_nowhere, max_wait=600.0, unreachable_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(Overloaded) as first:
        client.admit(_ticket("t1"))
    assert 0.5 <= time.monotonic() - started < 1.5
    assert first.value.retry_after and "scheduling.unreachable_timeout" in first.value.message
    started = time.monotonic()
    with pytest.raises(Overloaded):
        client.admit(_ticket("t2"))
    assert time.monotonic() - started < 0.1


def test_with_no_arbiter_to_reach_a_client_that_leaves_is_dropped_at_once():
    client = SchedulerClient(_nowhere, max_wait=600.0, unreachable_timeout=60.0)
    leave = gevent.event.Event()

    def watch(on_gone):
        gevent.spawn(lambda: (leave.wait(), on_gone()))
        return lambda: None
    waiting = _admit_later(client, _ticket("t1"), watch=watch)
    gevent.sleep(0.2)
    leave.set()
    with pytest.raises(ClientLeft):
        waiting.get(timeout=1)


def test_a_request_waits_no_longer_than_its_deadline_whatever_max_wait_says():
    client = SchedulerClient(_nowhere, max_wait=600.0, unreachable_timeout=60.0)
    with pytest.raises(Overloaded) as late:
        client.admit(_ticket("t1"), deadline=time.monotonic() + 0.3)
    assert "scheduling.max_wait" in late.value.message


def test_a_slot_is_given_back_without_waiting_while_no_arbiter_is_there(instance):
    first = instance()
    client = first.client()
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2"))
    first.resign()  # no worker stands for the lock now: nobody answers
    started = time.monotonic()
    client.end("t1")
    assert time.monotonic() - started < 0.05
    first._pid = 0
    successor = first.client()  # a worker stands again: it hears that t2 alone runs
    assert successor.admit(_ticket("probe", "bob")).ticket == "probe"


def test_two_instances_beside_each_other_in_one_directory_each_have_their_own_scheduler(tmp_path):
    """A staging copy, a second team's configuration, ``ollama-proxy serve`` beside the service."""
    a = LocalScheduler(str(tmp_path), _build(num_parallel=1), 5.0, instance="instance-a")
    b = LocalScheduler(str(tmp_path), lambda: Scheduler([ServerSpec("gpu1"), ServerSpec("gpu2")]), 5.0,
                       instance="instance-b")
    try:
        a.client().admit(_ticket("a1"))  # a's one slot on gpu1
        granted = b.client().admit(Ticket("b1", Share("bob"), "m", ("gpu2",)))
        assert granted.placement.server == "gpu2"  # decided by b's arbiter, which knows gpu2
        assert b.client().admit(_ticket("b2", "carol")).placement.server == "gpu1"  # b's own count of gpu1
        assert a.arbiter is not None and b.arbiter is not None and a.arbiter is not b.arbiter
    finally:
        a.resign()
        b.resign()


def test_a_line_that_is_no_message_is_dropped_and_the_connection_kept(client_of):
    client = client_of()
    client.admit(_ticket("t1"))
    link = client._link
    if isinstance(link, SocketLink):
        link.sock.sendall(b"{not json\n")
        link.sock.sendall(b'{"op": 7}\n')
        gevent.sleep(0.1)
    assert client.admit(_ticket("t2")).ticket == "t2"
    assert client._link is link  # the same line


class _Line:
    """A line that keeps what the worker says on it."""

    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)

    def messages(self):
        gevent.event.Event().wait()
        yield from ()

    def close(self):
        pass


def test_a_grant_is_counted_as_running_the_moment_it_arrives_whatever_runs_next():
    """A grant, then the line's end and the next line's sync, all before the request's greenlet runs again."""
    first, second = _Line(), _Line()
    lines = iter([first, second])
    client = SchedulerClient(lambda receive: next(lines), max_wait=5.0)
    asking = gevent.spawn(client.admit, _ticket("t1"))
    _wait_for(lambda: first.sent)  # its submit went out; it waits for the answer
    client.receive({"op": "grant", "id": "t1", "server": "gpu1", "start": "warm", "options": {}, "evict": None,
                    "waited": 0.0})
    client._lost(first)  # the arbiter died: no yield between these
    client._opened(second)
    sync = second.sent[0]
    assert sync["op"] == "sync" and [m["id"] for m in sync["running"]] == ["t1"] and sync["waiting"] == []
    assert asking.get(timeout=2).placement.server == "gpu1"
