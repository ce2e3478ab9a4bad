"""One scheduler for several instances, through the Redis they already share for rate limits.

Every worker of every instance stands for arbiter; the one holding the
``leader`` key (renewed while it lives, taken over when it lapses) reads every
worker's messages from one Redis list and answers each worker on its own list.
Workers prove they live by a key that expires; the arbiter frees the slots of
a worker whose key is gone. A new arbiter bumps the ``epoch``: the workers see
it, and tell it which slots they hold and what still waits.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import gevent
import redis

from ollama_proxy.scheduler.candidacy import Candidacy
from ollama_proxy.scheduler.core import Scheduler

log = logging.getLogger(__name__)
PREFIX = "ollama-proxy:scheduler:"
LEASE = 3.0  # seconds a leader's or a worker's key lives without renewal
BEAT = 1.0  # seconds between renewals, and between a worker's checks of the epoch
TAKEOVER_HOLD = BEAT * 1.5  # a new arbiter waits this long: every worker sees the new epoch within BEAT
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"


def _key(name: str) -> str:
    return PREFIX + name


class RedisLink:
    """A worker's line to whichever instance's worker is the arbiter now."""

    def __init__(self, client: redis.Redis, worker: str, epoch: bytes | None) -> None:
        self._redis = client
        self.worker = worker
        self._epoch = epoch

    def send(self, message: dict) -> None:
        try:
            self._redis.rpush(_key("inbox"), json.dumps({**message, "worker": self.worker}))
        except redis.RedisError as exc:
            raise OSError(str(exc)) from exc

    def messages(self) -> Iterator[dict]:
        """Yield the arbiter's answers; end when the arbiter changes (the client then re-announces)."""
        reply = _key(f"reply:{self.worker}")
        beaten = 0.0
        while True:
            try:
                if time.monotonic() - beaten >= BEAT:
                    self._redis.set(_key(f"alive:{self.worker}"), 1, px=int(LEASE * 1000))
                    if self._redis.get(_key("epoch")) != self._epoch:
                        return
                    beaten = time.monotonic()
                popped = self._redis.blpop([reply], timeout=BEAT)
            except redis.RedisError as exc:
                raise OSError(str(exc)) from exc
            if popped is not None:
                yield json.loads(popped[1])

    def close(self) -> None:
        pass


class _RedisWorker:
    """The arbiter's side of one worker: its tickets, and its reply list."""

    def __init__(self, client: redis.Redis, worker: str) -> None:
        self._redis = client
        self.worker = worker
        self.tickets: set[str] = set()

    def send(self, message: dict) -> None:
        key = _key(f"reply:{self.worker}")
        pipe = self._redis.pipeline()
        pipe.rpush(key, json.dumps(message))
        pipe.pexpire(key, int(LEASE * 1000 * 10))
        pipe.execute()


class SharedScheduler(Candidacy):
    """This process's way to the scheduler all instances share: a client, and a candidacy."""

    def __init__(self, url: str, build: Callable[[], Scheduler], max_wait: float,
                 loaded: Callable[[], dict] | None = None, every: float = 10.0, **client) -> None:
        super().__init__(build, max_wait, loaded, every, **client)
        self._url = url
        self._redis: redis.Redis | None = None
        self.worker = ""

    def _forked(self) -> None:
        self._redis = redis.Redis.from_url(self._url, socket_timeout=BEAT * 3)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _dial(self, question: bool = False) -> RedisLink:
        # A question's answer comes on a list of its own: answers on this worker's list are its grants.
        name = f"{self.worker}:question:{uuid.uuid4().hex[:8]}" if question else self.worker
        return RedisLink(self._redis, name, self._epoch())

    def _epoch(self) -> bytes:
        try:
            epoch = self._redis.get(_key("epoch"))
        except redis.RedisError as exc:
            raise OSError(str(exc)) from exc
        if epoch is None:
            raise OSError("no arbiter yet")
        return epoch

    def _stand(self) -> None:
        while True:
            try:
                if self._redis.set(_key("leader"), self.worker, nx=True, px=int(LEASE * 1000)):
                    self._lead()
            except redis.RedisError as exc:
                log.warning("the shared scheduler's Redis failed: %s", exc)
            gevent.sleep(BEAT)

    def _lead(self) -> None:
        self._redis.incr(_key("epoch"))
        self._take_office(TAKEOVER_HOLD)
        workers: dict[str, _RedisWorker] = {}
        log.info("this worker (%s) now decides who runs next on the Ollama servers", self.worker)
        try:
            renewed = checked = self.arbiter.clock()
            while True:
                popped = self._redis.blpop([_key("inbox")], timeout=0.25)
                if popped is not None:
                    message = json.loads(popped[1])
                    worker = workers.setdefault(message["worker"], _RedisWorker(self._redis, message["worker"]))
                    self.arbiter.handle(worker, message)
                now = self.arbiter.clock()
                if now - renewed >= BEAT:
                    if not self._redis.eval(_RENEW, 1, _key("leader"), self.worker, int(LEASE * 1000)):
                        return  # the lease lapsed and another worker leads now
                    renewed = now
                if now - checked >= BEAT:
                    self._bury(workers)
                    checked = now
        finally:
            self._leave_office()

    def _bury(self, workers: dict[str, _RedisWorker]) -> None:
        """Free the slots of the workers whose keys lapsed."""
        for name, worker in list(workers.items()):
            if not self._redis.exists(_key(f"alive:{name}")):
                self.arbiter.gone(worker)
                del workers[name]
            elif not worker.tickets:
                del workers[name]  # made again by its next message
