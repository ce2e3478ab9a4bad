"""One scheduler for every worker of an instance, with nothing to install or start.

An instance is one gunicorn master and its workers: a worker knows its instance
by its parent's pid and start time, so two instances on one host (a staging copy,
a second team's configuration, ``ollama-proxy serve`` beside the service) never
share a scheduler, whatever their logs directory. The workers elect the arbiter
by the instance's lock file: the first to take it serves the scheduler on an
abstract Unix socket named after the instance; the others wait on the lock in a
thread. When the arbiter's worker exits (or dies), the kernel lets go of its lock
and its socket; the next worker takes both, and the workers' clients reconnect
and tell it what they hold.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import socket
import struct
from collections.abc import Callable

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.server import StreamServer

from ollama_proxy.scheduler.decisions.core import Scheduler
from ollama_proxy.scheduler.transport import wire
from ollama_proxy.scheduler.transport.candidacy import Candidacy

log = logging.getLogger(__name__)
# An arbiter taking over from a sibling grants nothing until every worker of the instance that may hold a
# slot has said what it holds (at most TAKEOVER_MAX seconds: one may be stopped), or for TAKEOVER_HOLD where
# it cannot tell its siblings (an instance named by hand, as in tests).
TAKEOVER_HOLD = 0.5
TAKEOVER_MAX = 3.0
NEWBORN = 1.0  # seconds: a sibling younger than this started after the last arbiter died, and holds nothing
_LOCK_NAME = re.compile(r"\.scheduler-(?P<pid>\d+)-(?P<started>\d+)\.lock")


class SocketLink:
    """A worker's connection to the arbiter, one JSON object a line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tickets: set[str] = set()
        self.peer: int | None = None  # the worker's pid, on the arbiter's side
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
        """Yield each message that comes; a line that is no message is dropped, not the connection."""
        for line in self.sock.makefile("rb"):
            try:
                yield wire.decode(line)
            except wire.BadMessage as exc:
                log.warning("dropped a scheduler message: %s", exc)

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


def address(instance: str) -> str:
    """The abstract socket name of an instance's scheduler: no file to clean up, no path-length limit."""
    digest = hashlib.sha256(instance.encode()).hexdigest()[:24]
    return f"\0ollama-proxy-scheduler-{digest}"


def this_instance() -> str:
    """This worker's instance: its gunicorn master's pid and start time (a pid alone may be reused)."""
    master = os.getppid()
    return f"{master}-{start_time(master)}"


def start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def siblings(master: int, older_than: float) -> set[int]:
    """The other live processes of ``master`` (the instance's workers) started more than ``older_than`` seconds ago."""
    found = set()
    try:
        with open("/proc/uptime") as uptime:
            now = float(uptime.read().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == master and fields[0] != "Z" and now - int(fields[19]) / ticks > older_than:
            found.add(int(entry))
    return found


def lock_path(directory: str, instance: str) -> str:
    return os.path.join(directory, f".scheduler-{instance}.lock")


def remove_stale_locks(directory: str) -> None:
    """Remove the lock files of instances that are gone (their master's pid is dead, or another process's)."""
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        found = _LOCK_NAME.fullmatch(name)
        if found and start_time(int(found["pid"])) != found["started"]:
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def same_user(sock: socket.socket) -> bool:
    """Whether the peer runs as this process's user: an abstract socket has no file permissions to say so."""
    return _credentials(sock)[1] == os.getuid()


def peer_pid(sock: socket.socket) -> int:
    return _credentials(sock)[0]


def _credentials(sock: socket.socket) -> tuple[int, int, int]:
    return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))


def _took_over(fd: int) -> bool:
    """Whether an arbiter of this instance (a sibling worker) held the lock before: its workers may hold slots."""
    before = os.pread(fd, 64, 0).strip()
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return bool(before)


class LocalScheduler(Candidacy):
    """This process's way to the instance's scheduler: a client, and a candidacy to be the arbiter."""

    borrows = True  # a worker's connection lives as long as the worker: the arbiter can take its loans back

    def __init__(self, directory: str, build: Callable[[], Scheduler], max_wait: float,
                 loaded: Callable[[], dict] | None = None, every: float = 10.0, *, instance: str | None = None,
                 first_hold: float = 0.0, **client) -> None:
        """``directory`` holds the instance's lock file; ``instance`` names the instance (default: this worker's
        gunicorn master, ``this_instance``). ``first_hold``: an arbiter no worker used grants nothing this long
        after one comes, while the others come too (the instance's arbiter while Redis is away)."""
        super().__init__(build, max_wait, loaded, every, **client)
        self._first_hold = first_hold
        self.directory = directory
        self._instance = instance
        self.instance = instance or ""
        self._lock_fd: int | None = None
        self._server: StreamServer | None = None
        self._workers: set[SocketLink] = set()

    def _forked(self) -> None:
        self.instance = self._instance or this_instance()

    @property
    def lock_path(self) -> str:
        return lock_path(self.directory, self.instance)

    def _dial(self, question: bool = False) -> SocketLink:
        sock = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(address(self.instance))
        except OSError:
            sock.close()
            raise
        return SocketLink(sock)

    def _stand(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        remove_stale_locks(self.directory)
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        # flock blocks the OS thread: wait in the hub's thread pool so the worker's greenlets go on.
        gevent.get_hub().threadpool.apply(fcntl.flock, (fd, fcntl.LOCK_EX))
        self._lock_fd = fd
        took_over = _took_over(fd)
        listener = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address(self.instance))
        listener.listen(1024)
        if not took_over:
            self._take_office(0.0)
        elif self._instance is not None:  # named by hand: its workers cannot be told from other processes
            self._take_office(TAKEOVER_HOLD)
        else:
            self._take_office(TAKEOVER_MAX).expect(siblings(os.getppid(), NEWBORN) | {os.getpid()})
        self._server = StreamServer(listener, self._serve_worker)
        self._server.start()
        log.info("this worker (pid %d) now decides who runs next on the Ollama servers", os.getpid())

    def _serve_worker(self, sock, _address) -> None:
        if not same_user(sock):
            log.warning("refused a scheduler connection from another user's process")
            sock.close()
            return
        worker = SocketLink(sock)
        worker.peer = peer_pid(sock)
        self._arrived()
        self._workers.add(worker)
        try:
            for message in worker.messages():
                self.arbiter.handle(worker, message)
        except OSError as exc:
            # After resign() this worker is stopping and its lines close under their readers (EBADF, "closed in
            # another greenlet"): the next arbiter hears from the workers, nothing failed.
            if self._server is not None:
                log.warning("a worker's scheduler connection failed: %s", exc)
        finally:
            self._workers.discard(worker)
            if self.arbiter is not None:
                self.arbiter.gone(worker)
            worker.close()

    def _connect(self, receive):
        if self.arbiter is not None:
            self._arrived()
        return super()._connect(receive)

    def _arrived(self) -> None:
        """A worker comes to this arbiter: the first after none, held for ``first_hold``, waits for the others."""
        arbiter = self.arbiter
        if self._first_hold and arbiter is not None and not self.in_use:
            arbiter.scheduler.hold_until = max(arbiter.scheduler.hold_until, arbiter.clock() + self._first_hold)

    @property
    def in_use(self) -> bool:
        """Whether any worker's line (this worker's own included) is on this arbiter."""
        return bool(self._workers) or self._own_link is not None

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
