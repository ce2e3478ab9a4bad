"""What every way to an instance's scheduler shares: a client for this process, and a candidacy.

Each (forked) worker process gets its own client on first use and stands for
arbiter. While this worker is the arbiter its requests ask it by plain calls;
otherwise the transport (``local``: a Unix socket; ``shared``: Redis) dials it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import gevent

from ollama_proxy.scheduler.decisions.core import Scheduler
from ollama_proxy.scheduler.decisions.servers import ServerSpec
from ollama_proxy.scheduler.transport.arbiter import Arbiter
from ollama_proxy.scheduler.transport.client import SchedulerClient
from ollama_proxy.scheduler.transport.inprocess import InProcessLink
from ollama_proxy.scheduler.transport.wire import Link

Receive = Callable[[dict], None]


class Candidacy:
    borrows = False  # whether this transport's workers take the free slots the arbiter lends (``core.Loan``)

    def __init__(self, build: Callable[[], Scheduler], max_wait: float,
                 loaded: Callable[[], dict] | None = None, every: float = 10.0, *,
                 specs: Iterable[ServerSpec] = (), unreachable_timeout: float = 10.0) -> None:
        self._build = build
        self._max_wait = max_wait
        self._specs = tuple(specs)
        self._unreachable_timeout = unreachable_timeout
        self._loaded = loaded
        self._every = every
        self._pid = 0
        self._client: SchedulerClient | None = None
        self.arbiter: Arbiter | None = None
        self._own_link: InProcessLink | None = None

    def client(self) -> SchedulerClient:
        """Return this process's client; stand for arbiter on first use in each (forked) process."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self.arbiter = None
            self._forked()
            self._client = SchedulerClient(self._connect, self._max_wait, ask=self._ask, borrow=self.borrows,
                                           specs=self._specs, accept=self._accept,
                                           unreachable_timeout=self._unreachable_timeout)
            gevent.spawn(self._stand)
        return self._client

    def _connect(self, receive: Receive) -> Link:
        if self.arbiter is not None:  # this worker decides: its requests ask by calls
            self._own_link = InProcessLink(self.arbiter, receive)
            return self._own_link
        return self._dial()

    def _ask(self, receive: Receive) -> Link:
        """A line of its own for one question: the worker's line carries its grants."""
        return InProcessLink(self.arbiter, receive) if self.arbiter is not None else self._dial(question=True)

    def _take_office(self, hold: float) -> Arbiter:
        """Become the arbiter, granting nothing for ``hold`` seconds while the workers say what they hold."""
        self.arbiter = Arbiter(self._build())
        self.arbiter.start(hold, self._loaded, self._every)
        return self.arbiter

    def resign(self) -> None:
        """Stop being the arbiter (a worker exiting): the next worker takes over."""
        self._leave_office()

    def _leave_office(self) -> None:
        """Stop deciding: this worker's own line closes, and its client dials the next arbiter.

        The arbiter is let go of first: closing the line may let the client dial before this returns.
        """
        arbiter, self.arbiter = self.arbiter, None
        own, self._own_link = self._own_link, None
        if arbiter is not None:
            arbiter.stop()
        if own is not None:
            own.close()

    # what each transport does

    def _accept(self, ticket, grant: dict) -> bool:
        """Take a grant for good (a transport whose arbiters may be deposed checks the grant's term)."""
        return True

    def _forked(self) -> None:
        """Make this process's own connections (a new worker process)."""

    def _dial(self, question: bool = False) -> Link:
        raise NotImplementedError

    def _stand(self) -> None:
        raise NotImplementedError
