"""The arbiter and its clients over real Unix sockets, in one process's greenlets."""

import gevent
import pytest

from ollama_proxy.errors import RateLimited
from ollama_proxy.scheduler.client import ClientLeft
from ollama_proxy.scheduler.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.fairness import Share
from ollama_proxy.scheduler.local import LocalScheduler
from ollama_proxy.scheduler.servers import ServerSpec


def _build(bounds=None):
    return lambda: Scheduler([ServerSpec("gpu1", num_parallel=2)], bounds or Bounds())


def _ticket(ticket_id: str, principal: str = "alice") -> Ticket:
    return Ticket(ticket_id, Share(principal), "m", ("gpu1",))


@pytest.fixture
def instance(tmp_path):
    made = []

    def make(bounds=None, max_wait=5.0):
        local = LocalScheduler(str(tmp_path / "scheduler.lock"), _build(bounds), max_wait)
        made.append(local)
        return local
    yield make
    for local in made:
        local.resign()


def _admit_later(client, ticket, **kw):
    return gevent.spawn(client.admit, ticket, **kw)


def test_a_third_request_waits_for_a_slot_and_gets_it_when_one_ends(instance):
    client = instance().client()
    assert client.admit(_ticket("t1")).placement.server == "gpu1"
    client.admit(_ticket("t2"))
    third = _admit_later(client, _ticket("t3"))
    gevent.sleep(0.2)
    assert not third.ready()
    client.end("t1")
    assert third.get(timeout=2).ticket == "t3"


def test_a_refusal_comes_back_as_the_same_error(instance):
    client = instance(Bounds(max_queued_per_principal=1)).client()
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2"))
    waiting = _admit_later(client, _ticket("t3"))
    gevent.sleep(0.1)
    with pytest.raises(RateLimited) as refused:
        client.admit(_ticket("t4"))
    assert refused.value.status == 429 and "max_queued_per_principal" in refused.value.message
    waiting.kill()


def test_a_client_that_leaves_while_waiting_is_dropped_and_never_granted(instance):
    client = instance().client()
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


def test_a_request_that_waits_past_max_wait_gets_a_503(instance):
    client = instance(Bounds(max_wait=0.3), max_wait=0.3).client()
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2"))
    with pytest.raises(Exception) as late:
        client.admit(_ticket("t3"))
    assert getattr(late.value, "status", None) == 503


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
