"""One scheduler for every worker of an instance, with nothing to install or start.

The workers elect the arbiter by a lock file: the first to take it serves the
scheduler on an abstract Unix socket named after the lock's path; the others
wait on the lock in a thread. When the arbiter's worker exits (or dies), the
kernel lets go of its lock and its socket; the next worker takes both, and the
workers' clients reconnect and tell it what they hold.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import struct
from collections.abc import Callable

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.server import StreamServer

from ollama_proxy.scheduler import wire
from ollama_proxy.scheduler.candidacy import Candidacy
from ollama_proxy.scheduler.core import Scheduler

log = logging.getLogger(__name__)
# An arbiter taking over from a sibling grants nothing for this long, while the workers reconnect and say
# which slots they hold.
TAKEOVER_HOLD = 0.5


class SocketLink:
    """A worker's connection to the arbiter, one JSON object a line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tickets: set[str] = set()
        self._pending: list[bytes] = []  # what the writer sends next, in order
        self._ready = Event()
        self._closing = False
        self._writer = gevent.spawn(self._write)

    def send(self, message: dict) -> None:
        """Queue ``message`` for the writer, which sends it once this greenlet yields; never wait.

        The arbiter sends from inside its decisions, which must not yield to another greenlet. What
        several requests send in one turn of the event loop (at c=16, a worker's reports that
        requests started and ended; a decision's grants) goes in one write, and is read in one.
        """
        if self._writer.dead:
            raise OSError("the connection is closed")
        self._pending.append(wire.encode(message))
        self._ready.set()

    def messages(self):
        for line in self.sock.makefile("rb"):
            yield wire.decode(line)

    def close(self) -> None:
        self._closing = True
        self._ready.set()
        self.sock.close()

    def _write(self) -> None:
        """Send what is queued, all of it in one write."""
        while True:
            self._ready.wait()
            self._ready.clear()
            if self._closing:
                return
            data, self._pending = b"".join(self._pending), []
            try:
                self.sock.sendall(data)
            except OSError:
                return


def address(lock_path: str) -> str:
    """The abstract socket name for a lock file: no file to clean up, no path-length limit."""
    digest = hashlib.sha256(os.path.abspath(lock_path).encode()).hexdigest()[:24]
    return f"\0ollama-proxy-scheduler-{digest}"


def same_user(sock: socket.socket) -> bool:
    """Whether the peer runs as this process's user: an abstract socket has no file permissions to say so."""
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid == os.getuid()


def _took_over(fd: int) -> bool:
    """Whether an arbiter of this same instance (a sibling worker) held the lock before: its workers may hold slots.

    The lock file names the gunicorn master of the last arbiter; a fresh start has another.
    """
    before = os.pread(fd, 64, 0).decode(errors="replace").strip()
    mine = str(os.getppid())
    os.ftruncate(fd, 0)
    os.pwrite(fd, mine.encode(), 0)
    return before == mine


class LocalScheduler(Candidacy):
    """This process's way to the instance's scheduler: a client, and a candidacy to be the arbiter."""

    borrows = True  # a worker's connection lives as long as the worker: the arbiter can take its loans back

    def __init__(self, lock_path: str, build: Callable[[], Scheduler], max_wait: float,
                 loaded: Callable[[], dict] | None = None, every: float = 10.0) -> None:
        super().__init__(build, max_wait, loaded, every)
        self.lock_path = lock_path
        self._lock_fd: int | None = None
        self._server: StreamServer | None = None
        self._workers: set[SocketLink] = set()

    def _dial(self, question: bool = False) -> SocketLink:
        sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(address(self.lock_path))
        except OSError:
            sock.close()
            raise
        return SocketLink(sock)

    def _stand(self) -> None:
        os.makedirs(os.path.dirname(self.lock_path) or ".", exist_ok=True)
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        # flock blocks the OS thread: wait in the hub's thread pool so the worker's greenlets go on.
        gevent.get_hub().threadpool.apply(fcntl.flock, (fd, fcntl.LOCK_EX))
        self._lock_fd = fd
        hold = TAKEOVER_HOLD if _took_over(fd) else 0.0
        listener = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address(self.lock_path))
        listener.listen(1024)
        self._take_office(hold)
        self._server = StreamServer(listener, self._serve_worker)
        self._server.start()
        log.info("this worker (pid %d) now decides who runs next on the Ollama servers", os.getpid())

    def _serve_worker(self, sock, _address) -> None:
        if not same_user(sock):
            log.warning("refused a scheduler connection from another user's process")
            sock.close()
            return
        worker = SocketLink(sock)
        self._workers.add(worker)
        try:
            for message in worker.messages():
                self.arbiter.handle(worker, message)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("a worker's scheduler connection failed: %s", exc)
        finally:
            self._workers.discard(worker)
            if self.arbiter is not None:
                self.arbiter.gone(worker)
            worker.close()

    def resign(self) -> None:
        """Stop being the arbiter (a worker shutting down): the next worker takes over."""
        self._leave_office()
        if self._server is not None:
            self._server.close()
            self._server = None
        for worker in list(self._workers):
            try:
                worker.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
