"""The shared scheduler's Redis side, against a real redis-server: terms fence grants, the census finds the dead."""

import json

import pytest
import redis

from ollama_proxy.scheduler.decisions.core import Scheduler, Ticket
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.servers import ServerSpec, scaled
from ollama_proxy.scheduler.transport import redis_lines, wire
from ollama_proxy.scheduler.transport.arbiter import Arbiter
from ollama_proxy.scheduler.transport.client import SchedulerClient
from ollama_proxy.scheduler.transport.shared import SharedScheduler

pytestmark = pytest.mark.redis
SPECS = [ServerSpec("gpu1", num_parallel=2, max_loaded_models=1)]


@pytest.fixture
def store(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()  # its pooled connections too: left to the collector, they warn as unclosed sockets


@pytest.fixture
def worker(redis_server, tmp_path):
    """One worker's side of the shared scheduler, its client made (nothing stands for leader here)."""
    made = SharedScheduler(redis_server.url, lambda share=1: Scheduler(scaled(SPECS, share)), 5.0,
                           directory=str(tmp_path), specs=SPECS)
    made._forked()  # its Redis client and its name, as in a new worker
    made._client = SchedulerClient(lambda receive: None, 5.0, specs=SPECS)  # a grant's record names its servers
    yield made
    made._redis.close()


def _ticket(ticket_id: str) -> Ticket:
    return Ticket(ticket_id, Share("alice"), "m", ("gpu1",))


def _grant(ticket_id: str, term: str) -> dict:
    return {"op": "grant", "id": ticket_id, "server": "gpu1", "start": "warm", "options": {}, "evict": None,
            "waited": 0.0, "term": term}


def test_a_grant_is_taken_only_while_its_term_is_the_current_one(worker, store):
    store.set(redis_lines.PREFIX + "term", "term-1")
    assert worker._accept(_ticket("t1"), _grant("t1", "term-1"))
    store.set(redis_lines.PREFIX + "term", "term-2")  # another leader took office
    assert not worker._accept(_ticket("t2"), _grant("t2", "term-1"))  # the deposed one's grant, however late
    held = store.hgetall(redis_lines.PREFIX + f"held:{worker.worker}")
    assert list(held) == [b"t1"]
    record = json.loads(held[b"t1"])  # what a new leader adopts: the whole ticket, where it runs
    assert wire.ticket_of(record).share.principal == "alice" and wire.placement_of(record).server == "gpu1"


def test_a_grant_when_redis_has_lost_its_term_is_not_taken(worker, store):
    store.flushall()
    assert not worker._accept(_ticket("t1"), _grant("t1", "term-1"))


def test_a_grant_of_the_instances_own_arbiter_needs_no_term(worker):
    grant = _grant("t1", "")
    del grant["term"]
    assert worker._accept(_ticket("t1"), grant)


def test_a_beat_says_whether_redis_knew_the_worker_and_the_current_term(worker, store):
    store.set(redis_lines.PREFIX + "term", "term-1")
    store.set(redis_lines.PREFIX + "instances", 3)
    assert worker._beat() == (False, "term-1")  # its first: unknown until now
    assert worker._beat() == (True, "term-1")
    assert worker._instances == 3
    store.flushall()
    assert worker._beat() == (False, "")  # Redis lost its data: the worker says all it holds again


def test_the_census_frees_the_slots_of_a_worker_whose_entry_lapsed(worker, store, monkeypatch):
    arbiter = Arbiter(Scheduler(SPECS))
    replies = redis_lines.Replies(store, "term-1")
    workers = {}
    gone = redis_lines.RedisWorker(replies, "host:1-1/7/gone")
    workers[gone.worker] = gone
    arbiter.handle(gone, wire.sync([wire.running(_ticket("t1"), wire.placement_of(_grant("t1", "")))], []))
    store.zadd(redis_lines.PREFIX + "workers", {gone.worker: 1})  # its lease ran out long ago
    store.hset(redis_lines.PREFIX + f"held:{gone.worker}", "t1", "{}")
    assert arbiter.scheduler.servers["gpu1"].running == 1
    worker._census(arbiter, workers, replies)
    assert arbiter.scheduler.servers["gpu1"].running == 0 and not workers
    assert not store.exists(redis_lines.PREFIX + f"held:{gone.worker}")
    replies.close()


@pytest.mark.parametrize("share, parallel, concurrent", [(1, [4, 1], [None, 3]), (2, [2, 1], [None, 1]),
                                                         (3, [1, 1], [None, 1])])
def test_an_instance_alone_schedules_on_its_share_of_each_server_at_least_one_slot(share, parallel, concurrent):
    specs = [ServerSpec("a", num_parallel=4), ServerSpec("b", num_parallel=1, max_concurrent=3)]
    assert [(s.num_parallel, s.max_concurrent) for s in scaled(specs, share)] == list(zip(parallel, concurrent,
                                                                                        strict=True))
