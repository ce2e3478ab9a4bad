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
from collections.abc import Callable, Iterator
from dataclasses import replace

import gevent
import redis
from gevent.event import Event

from ollama_proxy.scheduler import wire
from ollama_proxy.scheduler.candidacy import Candidacy
from ollama_proxy.scheduler.core import Scheduler
from ollama_proxy.scheduler.inprocess import InProcessLink
from ollama_proxy.scheduler.local import LocalScheduler, this_instance
from ollama_proxy.scheduler.servers import ServerSpec

log = logging.getLogger(__name__)
PREFIX = "ollama-proxy:scheduler:"
LEASE = 3.0  # seconds a leader's lease lives without renewal
BEAT = 1.0  # seconds between renewals: the leader's, and each worker's
WORKER_LEASE = 10.0  # seconds a worker's entry lives without renewal: stalls and retries shorter than this are no death
MARGIN = 0.5  # seconds of its lease a leader keeps in hand: past LEASE - MARGIN since a renewal began, it renews first
FRESH_HOLD = BEAT * 2  # a leader after no term (a first start, or Redis lost its data) grants nothing this long
TERM_HOLD = 0.25  # a leader after another grants nothing this long, while the workers say what waits
# Redis unreachable this long, an instance schedules alone: a restart of Redis within it changes nothing.
FALLBACK_AFTER = BEAT * 3

# KEYS: leader, term. ARGV: me, lease ms, new term. The previous term ('' for none), or nil if another leads.
_ELECT = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local before = redis.call('get', KEYS[2])
  redis.call('set', KEYS[2], ARGV[3])
  if before then return before end
  return ''
end
return false
"""
# KEYS: leader, term. ARGV: me, lease ms, my term. 1 if the lease was mine and is renewed.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] and redis.call('get', KEYS[2]) == ARGV[3] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: leader. ARGV: me. Let go of the lease, if it is mine.
_RESIGN = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# KEYS: term, held. ARGV: the grant's term, ticket, its record, its lifetime ms. 1 if the term is current.
_ACCEPT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
redis.call('pexpire', KEYS[2], ARGV[4])
return 1
"""
# KEYS: workers, held, term, instances. ARGV: worker, lease ms. {known before, term, instances seen}.
_BEAT = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local known = redis.call('zscore', KEYS[1], ARGV[1])
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('pexpire', KEYS[2], tonumber(ARGV[2]) * 3)
return {known and 1 or 0, redis.call('get', KEYS[3]) or '', redis.call('get', KEYS[4]) or '1'}
"""
# KEYS: workers. The workers whose entries lapsed (removed), then those alive.
_CENSUS = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('zrangebyscore', KEYS[1], '-inf', now)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
return {dead, redis.call('zrangebyscore', KEYS[1], now, '+inf')}
"""


def _key(name: str) -> str:
    return PREFIX + name


class RedisDown(OSError):
    """Redis cannot be reached: the instance schedules alone."""


class NoArbiter(OSError):
    """Redis answers, and no leader holds a term yet: one is being elected."""


class _Writer:
    """Send queued messages to Redis in order, several in one transaction, from a greenlet of its own.

    ``send`` never yields (a decision must not, nor a worker saying its state); a failed
    write ends the writer, and ``failed`` says so.
    """

    def __init__(self, client: redis.Redis, write: Callable[[redis.client.Pipeline, list], None]) -> None:
        self._redis = client
        self._write = write
        self._pending: list = []
        self._ready = Event()
        self.failed: Exception | None = None
        self._greenlet = gevent.spawn(self._run)

    def send(self, item) -> None:
        if self.failed is not None or self._greenlet.dead:
            raise OSError(f"the scheduler's Redis failed: {self.failed}")
        self._pending.append(item)
        self._ready.set()

    def close(self) -> None:
        self._greenlet.kill(block=False)

    def _run(self) -> None:
        while True:
            self._ready.wait()
            self._ready.clear()
            items, self._pending = self._pending, []
            try:
                pipe = self._redis.pipeline(transaction=True)
                self._write(pipe, items)
                pipe.execute()
            except redis.RedisError as exc:
                self.failed = exc
                return


class RedisLink:
    """A worker's line to the leader of one term; it ends when the term does, and fails when Redis does."""

    def __init__(self, client: redis.Redis, worker: str, term: str) -> None:
        self._redis = client
        self.worker = worker
        self.term = term
        self._writer = _Writer(client, self._write)
        self._closed = False

    def send(self, message: dict) -> None:
        if self._closed:
            raise OSError("the line is closed")
        self._writer.send(message)

    def _write(self, pipe, messages: list[dict]) -> None:
        inbox = _key(f"inbox:{self.term}")
        for message in messages:
            _note_held(pipe, self.worker, message)
            pipe.rpush(inbox, json.dumps({**message, "worker": self.worker}))

    def messages(self) -> Iterator[dict]:
        """Yield this term's answers; end when a new leader says its term began; fail when Redis does."""
        reply = _key(f"reply:{self.worker}")
        while not self._closed:
            try:
                popped = self._redis.blpop([reply], timeout=BEAT)
            except redis.RedisError as exc:
                raise RedisDown(f"the scheduler's Redis failed: {exc}") from exc
            if self._writer.failed is not None:
                raise RedisDown(f"the scheduler's Redis failed: {self._writer.failed}")
            if popped is None:
                continue
            try:
                message = wire.decode(popped[1])
            except wire.BadMessage as exc:
                log.warning("dropped a scheduler message: %s", exc)
                continue
            if message.get("term") == self.term:
                yield message
            elif message["op"] == "term":
                return  # a new leader says so: say all this worker holds to it

    def close(self) -> None:
        self._closed = True
        self._writer.close()


def _note_held(pipe, worker: str, message: dict) -> None:
    """Keep ``held:<worker>`` what the worker runs, as the message it says changes it."""
    held, op = _key(f"held:{worker}"), message["op"]
    if op in ("end", "cancel"):
        pipe.hdel(held, message["id"])
    elif op == "sync":  # what runs, recorded again: Redis may have lost it
        pipe.delete(held)
        for running in message["running"]:
            pipe.hset(held, running["id"], json.dumps(running))
        pipe.pexpire(held, int(WORKER_LEASE * 3000))


class _LeadersOwnLink(InProcessLink):
    """The leader's own worker's line to its arbiter: calls, its grants fenced, what it holds kept in Redis too."""

    def __init__(self, arbiter, receive: Callable[[dict], None], term: str, client: redis.Redis, worker: str) -> None:
        super().__init__(arbiter, lambda message: receive({**message, "term": term}))
        self._worker = worker
        self._held = _Writer(client, lambda pipe, messages: [_note_held(pipe, worker, m) for m in messages])

    def send(self, message: dict) -> None:
        super().send(message)
        if message["op"] in ("end", "cancel", "sync"):
            try:
                self._held.send(message)
            except OSError:  # Redis failed: the next sync records it again
                pass

    def close(self) -> None:
        super().close()
        self._held.close()


class _Replies:
    """The leader's side of every worker: their answers, written in order by one greenlet."""

    def __init__(self, client: redis.Redis, term: str) -> None:
        self.term = term
        self._writer = _Writer(client, self._write)

    def _write(self, pipe, items: list[tuple[str, dict]]) -> None:
        for worker, message in items:
            key = _key(f"reply:{worker}")
            pipe.rpush(key, json.dumps({**message, "term": self.term}))
            pipe.pexpire(key, int(WORKER_LEASE * 3000))

    def send(self, worker: str, message: dict) -> None:
        self._writer.send((worker, message))

    def close(self) -> None:
        self._writer.close()


class _RedisWorker:
    """The arbiter's side of one worker: its tickets, and its answers."""

    def __init__(self, replies: _Replies, worker: str) -> None:
        self._replies = replies
        self.worker = worker
        self.tickets: set[str] = set()

    def send(self, message: dict) -> None:
        self._replies.send(self.worker, message)


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
            self._own_link = _LeadersOwnLink(self.arbiter, receive, self.term, self._redis, self.worker)
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
            term, leader = self._redis.mget(_key("term"), _key("leader"))
        except redis.RedisError as exc:
            raise RedisDown(f"the scheduler's Redis failed: {exc}") from exc
        self._down_since = None
        if term is None or leader is None:
            raise NoArbiter("no scheduler leads yet")
        return RedisLink(self._redis, name, term.decode())

    def _beat(self) -> tuple[bool, str]:
        """Renew this worker's entry; return whether Redis knew it, and the current term."""
        known, term, instances = self._redis.eval(
            _BEAT, 4, _key("workers"), _key(f"held:{self.worker}"), _key("term"), _key("instances"), self.worker,
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
            return bool(self._redis.eval(_ACCEPT, 2, _key("term"), _key(f"held:{self.worker}"), term, ticket.id,
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
        before = self._redis.eval(_ELECT, 2, _key("leader"), _key("term"), self.worker, int(LEASE * 1000), term)
        if before is None:
            return
        self.term = term
        try:
            self._lead(term, elected, fresh=before == b"")
        finally:
            self.term = ""

    def _lead(self, term: str, elected: float, fresh: bool) -> None:
        arbiter = self._take_office(FRESH_HOLD if fresh else TERM_HOLD)
        replies = _Replies(self._redis, term)
        workers: dict[str, _RedisWorker] = {}
        lease_until = elected + LEASE - MARGIN
        log.info("this worker (%s) now decides who runs next on the Ollama servers (term %s)", self.worker, term[:8])
        try:
            # The term is the new one already: no grant of the last term is taken after this read.
            for name in self._census(arbiter, workers, replies):
                worker = workers.setdefault(name, _RedisWorker(replies, name))
                for entry in self._redis.hvals(_key(f"held:{name}")):
                    arbiter.handle(worker, _running_of(entry))
                replies.send(name, {"op": "term", "id": ""})  # each says what it holds and waits for, now
            renewed = checked = time.monotonic()
            while not self._resigned:
                popped = self._redis.blpop([_key(f"inbox:{term}")], timeout=0.25)
                now = time.monotonic()
                if now >= lease_until or now - renewed >= BEAT:  # before acting on anything: the lease holds
                    if not self._redis.eval(_RENEW, 2, _key("leader"), _key("term"), self.worker,
                                            int(LEASE * 1000), term):
                        log.warning("this worker's term as the shared scheduler ended (its lease lapsed)")
                        return
                    lease_until, renewed = now + LEASE - MARGIN, now
                    self._redis.pexpire(_key(f"inbox:{term}"), int(WORKER_LEASE * 3000))
                if popped is not None:
                    self._handle(arbiter, workers, replies, popped[1])
                if now - checked >= BEAT:
                    self._census(arbiter, workers, replies)
                    checked = now
        finally:
            replies.close()
            self._leave_office()

    @staticmethod
    def _handle(arbiter, workers: dict, replies: _Replies, raw: bytes) -> None:
        try:
            message = wire.decode(raw)
            name = message["worker"]
            if not isinstance(name, str):
                raise wire.BadMessage("a message without its worker")
        except (wire.BadMessage, KeyError) as exc:
            log.warning("dropped a scheduler message: %s", exc)
            return
        arbiter.handle(workers.setdefault(name, _RedisWorker(replies, name)), message)

    def _census(self, arbiter, workers: dict, replies: _Replies) -> list[str]:
        """Free the slots of the workers gone from the census; say how many instances share the scheduler.

        Returns the workers alive.
        """
        dead, alive = self._redis.eval(_CENSUS, 1, _key("workers"))
        alive = [n.decode() for n in alive]
        for name in [n.decode() for n in dead] + [n for n in workers if n not in alive]:
            worker = workers.pop(name, None)
            if worker is not None:
                arbiter.gone(worker)
            self._redis.delete(_key(f"held:{name}"))
        self._redis.set(_key("instances"), len({n.split("/", 1)[0] for n in alive}) or 1, px=int(WORKER_LEASE * 1000))
        return alive

    def resign(self) -> None:
        """Let go of the lease now, if this worker leads (it is exiting): another takes over within a beat."""
        self._resigned = True
        self._leave_office()
        self.fallback.resign()
        if self._redis is not None and self.worker:
            try:
                self._redis.eval(_RESIGN, 1, _key("leader"), self.worker)
            except redis.RedisError:
                pass


def _running_of(entry: bytes) -> dict:
    """A ``running`` message from a worker's record in Redis (``ACCEPT``'s or ``sync``'s)."""
    try:
        return json.loads(entry)
    except ValueError:
        return {"op": "running", "id": ""}  # dropped by the arbiter as a bad message


def scaled(specs: list[ServerSpec], share: int) -> list[ServerSpec]:
    """Each server's slots divided among ``share`` instances (at least one each)."""
    if share <= 1:
        return list(specs)
    return [replace(spec, num_parallel=max(1, spec.num_parallel // share),
                    max_concurrent=None if spec.max_concurrent is None else max(1, spec.max_concurrent // share))
            for spec in specs]
