"""One scheduler for several instances, through the Redis they already share for rate limits.

Every worker of every instance stands for arbiter; the one holding the ``leader``
lease decides. Redis, not this code, keeps the decisions exact across leaders:

- **Terms.** A leader takes office in a term, a random id (unique whatever Redis
  forgets), set atomically with the lease (``ELECT``). It reads only its term's
  inbox, renews the lease only while the term is still its own (``RENEW``), and
  acts on a message only while its lease is sure to hold (its own clock, started
  before each renewal; past it, it renews first or steps down).
- **Fenced grants.** Every answer carries its term. A worker takes a grant for
  good only through ``ACCEPT``, which records the request under the worker in
  ``held:<worker>`` if, and only if, the term is still the current one: a deposed
  leader's grant is dropped, however late it arrives.
- **What runs is in Redis.** A new leader counts in every request recorded in the
  live workers' ``held`` hashes before it grants anything, then tells each live
  worker the new term; the workers answer with a ``sync`` of what they hold and
  wait for. A request's end removes its record in the same transaction as the
  message that tells it.
- **Liveness.** Each worker renews its entry in ``workers`` (a sorted set scored
  by expiry, in Redis's own time) every ``BEAT``; the leader frees the slots of a
  worker whose entry lapsed (``WORKER_LEASE``, several times the client's retry
  backoff). A worker that finds itself gone from the set (it stalled, or Redis
  lost its data) says all it holds again.

When Redis cannot be reached, each instance schedules alone on its share of the
servers (``fallback``): its workers' own arbiter (``local.LocalScheduler``), each
server's slots divided by the instances last seen. Requests go on, as they would
straight to Ollama; at worst the instances together send a server a little more
than it runs, and Ollama queues it. When Redis answers again, the workers say
what they hold to the shared leader and the instance's own arbiter is left idle.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

import gevent
import redis

from ollama_proxy.scheduler.decisions.core import Scheduler
from ollama_proxy.scheduler.decisions.servers import scaled
from ollama_proxy.scheduler.transport import wire
from ollama_proxy.scheduler.transport.candidacy import Candidacy
from ollama_proxy.scheduler.transport.local import LocalScheduler, start_time, this_instance
from ollama_proxy.scheduler.transport.redis_lines import (
    ACCEPT,
    BEAT,
    BEAT_SCRIPT,
    CENSUS,
    ELECT,
    LEASE,
    MARGIN,
    RENEW,
    RESIGN,
    WORKER_LEASE,
    LeadersOwnLink,
    NoArbiter,
    RedisDown,
    RedisLink,
    RedisWorker,
    Replies,
    key,
)

log = logging.getLogger(__name__)
# A leader after no term (a first start, or Redis lost its data) grants nothing this long: every live worker has
# beaten into the census by then. It then waits until each has said what it holds (an instance that scheduled alone
# while Redis was away, too), at most FRESH_MAX in all.
FRESH_HOLD = BEAT * 2
FRESH_MAX = BEAT * 8
TERM_HOLD = 0.25  # a leader after another grants nothing this long, while the workers say what waits
# Redis unreachable this long, an instance schedules alone: a restart of Redis within it changes nothing.
FALLBACK_AFTER = BEAT * 3

log = logging.getLogger(__name__)


class SharedScheduler(Candidacy):
    """This process's way to the scheduler all instances share: a client, and a candidacy."""

    def __init__(self, url: str, build: Callable[..., Scheduler], max_wait: float,
                 loaded: Callable[[], dict] | None = None, every: float = 10.0, *, directory: str, **client) -> None:
        """``build(share)`` makes a scheduler with 1/``share`` of each server's slots (the instance's, alone)."""
        super().__init__(build, max_wait, loaded, every, **client)
        self._url = url
        self._redis: redis.Redis | None = None
        self.worker = ""
        self.term = ""  # the term this worker leads, while it does
        self._instances = 1  # the instances last seen sharing the scheduler
        self._resigned = False
        self._down_since: float | None = None  # since when Redis has not answered this worker
        self.fallback = LocalScheduler(directory, lambda: build(self._instances), max_wait, loaded, every,
                                       first_hold=BEAT * 1.5, **client)

    def _forked(self) -> None:
        self._redis = redis.Redis.from_url(self._url, socket_timeout=BEAT * 3, socket_connect_timeout=BEAT)
        self.worker = f"{socket.gethostname()}:{this_instance()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.fallback._pid = os.getpid()
        self.fallback._forked()

    # the client's lines

    def _connect(self, receive: Callable[[dict], None]):
        if self.arbiter is not None:  # this worker leads: its requests ask by calls, their grants fenced
            self._own_link = LeadersOwnLink(self.arbiter, receive, self.term, self._redis, self.worker)
            return self._own_link
        try:
            return self._dial()
        except RedisDown as exc:
            now = time.monotonic()
            self._down_since = self._down_since or now
            if now - self._down_since < FALLBACK_AFTER:
                raise  # the client tries again: Redis may be back in a moment
            log.warning("%s: this instance schedules alone on its share of the servers", exc)
            return self.fallback._connect(receive)

    def _ask(self, receive: Callable[[dict], None]):
        try:
            return super()._ask(receive)
        except RedisDown:
            return self.fallback._ask(receive)

    def _dial(self, question: bool = False) -> RedisLink:
        # A question's answer comes on a list of its own: answers on this worker's list are its grants.
        name = f"{self.worker}:question:{uuid.uuid4().hex[:8]}" if question else self.worker
        try:
            if not question:
                self._beat()  # in the census before anything it says reaches the leader
            term, leader = self._redis.mget(key("term"), key("leader"))
        except redis.RedisError as exc:
            raise RedisDown(f"the scheduler's Redis failed: {exc}") from exc
        self._down_since = None
        if term is None or leader is None:
            raise NoArbiter("no scheduler leads yet")
        return RedisLink(self._redis, name, term.decode())

    def _beat(self) -> tuple[bool, str]:
        """Renew this worker's entry; return whether Redis knew it, and the current term."""
        known, term, instances = self._redis.eval(
            BEAT_SCRIPT, 4, key("workers"), key(f"held:{self.worker}"), key("term"), key("instances"), self.worker,
            int(WORKER_LEASE * 1000))
        self._instances = max(1, int(instances or 1))
        return bool(known), term.decode()

    def _beat_forever(self) -> None:
        """Keep this worker in the census; when a term changes or Redis forgot this worker, say all it holds again.

        The worker that holds its instance's own arbiter keeps it to the share last seen, and once Redis
        answers again with a leader, resigns it: all the instance's workers go back to the shared one at once.
        """
        beaten = False
        while not self._resigned:
            gevent.sleep(BEAT)
            link = self._client._link if self._client is not None else None
            alone = self.fallback.arbiter
            if alone is not None:
                alone.scheduler.resize(scaled(self._specs, self._instances))
            try:
                known, term = self._beat()
            except redis.RedisError as exc:
                if isinstance(link, RedisLink):
                    log.warning("the scheduler's Redis failed: %s", exc)
                    self._client.reconnect()  # to this instance's own arbiter, while Redis is away
                continue
            if isinstance(link, RedisLink) and (link.term != term or (beaten and not known)):
                self._client.reconnect()
            beaten = True
            if alone is not None and self.fallback.in_use and term:
                log.warning("the scheduler's Redis answers again: this instance shares its scheduler again")
                self.fallback.resign()  # every worker of the instance dials again, and reaches the shared one
                gevent.spawn(self.fallback._stand)

    def _accept(self, ticket, grant: dict) -> bool:
        """Take a grant for good: recorded in Redis under this worker if its term is still the current one."""
        term = grant.get("term")
        if term is None:  # the instance's own arbiter's, while it schedules alone
            return True
        record = json.dumps(wire.running(ticket, wire.placement_of(grant), self._client.specs_of(ticket)))
        try:
            return bool(self._redis.eval(ACCEPT, 2, key("term"), key(f"held:{self.worker}"), term, ticket.id,
                                         record, int(WORKER_LEASE * 3000)))
        except redis.RedisError as exc:
            log.warning("a grant could not be taken, the scheduler's Redis failed: %s", exc)
            return False

    # the candidacy

    def _stand(self) -> None:
        gevent.spawn(self.fallback._stand)
        gevent.spawn(self._beat_forever)
        while not self._resigned:
            try:
                self._try_to_lead()
            except redis.RedisError as exc:
                log.warning("the shared scheduler's Redis failed: %s", exc)
            except Exception:  # a fault of its own must not end this worker's candidacy
                log.exception("the shared scheduler failed; this worker stands again")
            gevent.sleep(BEAT)

    def _try_to_lead(self) -> None:
        term = uuid.uuid4().hex
        elected = time.monotonic()  # before Redis starts the lease: the lease is sure to hold LEASE from here
        before = self._redis.eval(ELECT, 2, key("leader"), key("term"), self.worker, int(LEASE * 1000), term)
        if before is None:
            return
        self.term = term
        try:
            self._lead(term, elected, fresh=before == b"")
        finally:
            self.term = ""

    def _lead(self, term: str, elected: float, fresh: bool) -> None:
        arbiter = self._take_office(FRESH_MAX if fresh else TERM_HOLD)
        replies = Replies(self._redis, term)
        workers: dict[str, RedisWorker] = {}
        lease_until = elected + LEASE - MARGIN
        log.info("this worker (%s) now decides who runs next on the Ollama servers (term %s)", self.worker, term[:8])
        try:
            # The term is the new one already: no grant of the last term is taken after this read.
            for name in self._census(arbiter, workers, replies):
                worker = workers.setdefault(name, RedisWorker(replies, name))
                for entry in self._redis.hvals(key(f"held:{name}")):
                    arbiter.handle(worker, _running_of(entry))
                replies.send(name, {"op": "term", "id": ""})  # each says what it holds and waits for, now
            renewed = checked = time.monotonic()
            while not self._resigned:
                popped = self._redis.blpop([key(f"inbox:{term}")], timeout=0.25)
                now = time.monotonic()
                if now >= lease_until or now - renewed >= BEAT:  # before acting on anything: the lease holds
                    if not self._redis.eval(RENEW, 2, key("leader"), key("term"), self.worker,
                                            int(LEASE * 1000), term):
                        log.warning("this worker's term as the shared scheduler ended (its lease lapsed)")
                        return
                    lease_until, renewed = now + LEASE - MARGIN, now
                    self._redis.pexpire(key(f"inbox:{term}"), int(WORKER_LEASE * 3000))
                if popped is not None:
                    self._handle(arbiter, workers, replies, popped[1])
                expecting = fresh and now - elected >= FRESH_HOLD and arbiter.holding()
                if now - checked >= BEAT or (expecting and checked < elected + FRESH_HOLD):
                    alive = self._census(arbiter, workers, replies)
                    checked = now
                    if expecting:  # the hold ends once every worker in the census has said what it holds
                        arbiter.expect(set(alive))
        finally:
            replies.close()
            self._leave_office()

    @staticmethod
    def _handle(arbiter, workers: dict, replies: Replies, raw: bytes) -> None:
        try:
            message = wire.decode(raw)
            name = message["worker"]
            if not isinstance(name, str):
                raise wire.BadMessage("a message without its worker")
        except (wire.BadMessage, KeyError) as exc:
            log.warning("dropped a scheduler message: %s", exc)
            return
        arbiter.handle(workers.setdefault(name, RedisWorker(replies, name)), message)

    def _census(self, arbiter, workers: dict, replies: Replies) -> list[str]:
        """Free the slots of the workers gone from the census; say how many instances share the scheduler.

        Returns the workers alive.
        """
        dead, alive = self._redis.eval(CENSUS, 1, key("workers"))
        alive = [n.decode() for n in alive]
        for name in [n.decode() for n in dead] + [n for n in workers if n not in alive]:
            worker = workers.pop(name, None)
            if worker is not None:
                arbiter.gone(worker)
            self._redis.delete(key(f"held:{name}"))
        self._redis.set(key("instances"), len({n.split("/", 1)[0] for n in alive}) or 1, px=int(WORKER_LEASE * 1000))
        return alive

    def resign(self) -> None:
        """Let go of the lease now, if this worker leads (it is exiting): another takes over within a beat."""
        self._resigned = True
        self._leave_office()
        self.fallback.resign()
        if self._redis is not None and self.worker:
            try:
                self._redis.eval(RESIGN, 1, key("leader"), self.worker)
            except redis.RedisError:
                pass


def forget_worker(url: str, master: int, pid: int) -> None:
    """A worker of this host's instance ``master`` exited (its master saw it): take it out of the census now.

    The leader frees its slots at its next census, not after ``WORKER_LEASE``; if the worker led, its
    lease goes too, and another worker leads within a beat.
    """
    client = redis.Redis.from_url(url, socket_timeout=BEAT, socket_connect_timeout=BEAT)
    prefix = f"{socket.gethostname()}:{master}-{start_time(master)}/{pid}/"
    for member, _ in client.zscan_iter(key("workers"), match=prefix + "*"):
        client.zrem(key("workers"), member)
        client.delete(key(f"held:{member.decode()}"))
        client.eval(RESIGN, 1, key("leader"), member)


def _running_of(entry: bytes) -> dict:
    """A ``running`` message from a worker's record in Redis (``ACCEPT``'s or ``sync``'s)."""
    try:
        return json.loads(entry)
    except ValueError:
        return {"op": "running", "id": ""}  # dropped by the arbiter as a bad message
