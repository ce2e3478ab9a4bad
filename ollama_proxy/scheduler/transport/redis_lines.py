"""The shared scheduler's lines through Redis: its keys, its atomic scripts, and the writers that never yield.

A worker's line to the leader of one term (``RedisLink``), the leader's answers to every worker
(``_Replies``), and the leader's own worker's line (``LeadersOwnLink``); each keeps
``held:<worker>`` what the worker runs, in the same transaction as the message that changes it.
The scripts make each step that must not be split one atomic step in Redis (``shared`` says why).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import gevent
import redis
from gevent.event import Event

from ollama_proxy.scheduler.transport import wire
from ollama_proxy.scheduler.transport.inprocess import InProcessLink

log = logging.getLogger(__name__)
PREFIX = "ollama-proxy:scheduler:"
LEASE = 3.0  # seconds a leader's lease lives without renewal
BEAT = 1.0  # seconds between renewals: the leader's, and each worker's
WORKER_LEASE = 10.0  # seconds a worker's entry lives without renewal: stalls and retries shorter than this are no death
MARGIN = 0.5  # seconds of its lease a leader keeps in hand: past LEASE - MARGIN since a renewal began, it renews first

# KEYS: leader, term. ARGV: me, lease ms, new term. The previous term ('' for none), or nil if another leads.
ELECT = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local before = redis.call('get', KEYS[2])
  redis.call('set', KEYS[2], ARGV[3])
  if before then return before end
  return ''
end
return false
"""
# KEYS: leader, term. ARGV: me, lease ms, my term. 1 if the lease was mine and is renewed.
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] and redis.call('get', KEYS[2]) == ARGV[3] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: leader. ARGV: me. Let go of the lease, if it is mine.
RESIGN = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# KEYS: term, held. ARGV: the grant's term, ticket, its record, its lifetime ms. 1 if the term is current.
ACCEPT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
redis.call('pexpire', KEYS[2], ARGV[4])
return 1
"""
# KEYS: workers, held, term, instances. ARGV: worker, lease ms. {known before, term, instances seen}.
BEAT_SCRIPT = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local known = redis.call('zscore', KEYS[1], ARGV[1])
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('pexpire', KEYS[2], tonumber(ARGV[2]) * 3)
return {known and 1 or 0, redis.call('get', KEYS[3]) or '', redis.call('get', KEYS[4]) or '1'}
"""
# KEYS: workers. The workers whose entries lapsed (removed), then those alive.
CENSUS = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('zrangebyscore', KEYS[1], '-inf', now)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
return {dead, redis.call('zrangebyscore', KEYS[1], now, '+inf')}
"""


def key(name: str) -> str:
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
        inbox = key(f"inbox:{self.term}")
        for message in messages:
            _note_held(pipe, self.worker, message)
            pipe.rpush(inbox, json.dumps({**message, "worker": self.worker}))

    def messages(self) -> Iterator[dict]:
        """Yield this term's answers; end when a new leader says its term began; fail when Redis does."""
        reply = key(f"reply:{self.worker}")
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
    held, op = key(f"held:{worker}"), message["op"]
    if op in ("end", "cancel"):
        pipe.hdel(held, message["id"])
    elif op == "sync":  # what runs, recorded again: Redis may have lost it
        pipe.delete(held)
        for running in message["running"]:
            pipe.hset(held, running["id"], json.dumps(running))
        pipe.pexpire(held, int(WORKER_LEASE * 3000))


class LeadersOwnLink(InProcessLink):
    """The leader's own worker's line to its arbiter: calls, its grants fenced, what it holds kept in Redis too."""

    def __init__(self, arbiter, receive: Callable[[dict], None], term: str, client: redis.Redis, worker: str) -> None:
        super().__init__(arbiter, lambda message: receive({**message, "term": term}))
        self._answers.peer = worker  # named as in the census, like every other worker
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


class Replies:
    """The leader's side of every worker: their answers, written in order by one greenlet."""

    def __init__(self, client: redis.Redis, term: str) -> None:
        self.term = term
        self._writer = _Writer(client, self._write)

    def _write(self, pipe, items: list[tuple[str, dict]]) -> None:
        for worker, message in items:
            reply = key(f"reply:{worker}")
            pipe.rpush(reply, json.dumps({**message, "term": self.term}))
            pipe.pexpire(reply, int(WORKER_LEASE * 3000))

    def send(self, worker: str, message: dict) -> None:
        self._writer.send((worker, message))

    def close(self) -> None:
        self._writer.close()


class RedisWorker:
    """The arbiter's side of one worker: its tickets, and its answers."""

    def __init__(self, replies: Replies, worker: str) -> None:
        self._replies = replies
        self.worker = worker
        self.peer = worker  # as the census names it
        self.tickets: set[str] = set()

    def send(self, message: dict) -> None:
        self._replies.send(self.worker, message)
