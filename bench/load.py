"""The load driver: many keep-alive HTTP/1.1 connections on one epoll loop, no greenlets, no threads.

A ``Job`` says what to send and how; ``drive(job)`` runs it in the calling
process and returns what it measured. Nothing is parsed beyond what timing
needs: the status, the framing, and the ``~t<send time>~`` stamps that the
fake upstream puts in every chunk's text. Every stamp that arrives gives a
chunk delay (arrival − send, both ``time.monotonic()`` on this machine); the
first stamp of an answer gives its time to first chunk.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import socket
import time
from array import array
from dataclasses import dataclass, field

STAMP = re.compile(rb"~t(\d+\.\d+)~")
_HEAD_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
_END_OF_CHUNKS = b"\r\n0\r\n\r\n"
RECV_SIZE = 256 * 1024
SETTLE = 1.0  # seconds after the last start before chunk delays count as steady (until the first end)
GRACE = 30.0  # seconds an answer may run past the job's duration before it counts as failed


@dataclass
class Job:
    """What one driver process sends: ``connections`` connections to 127.0.0.1:``port``.

    With ``repeat`` each connection sends requests back to back until
    ``duration`` has passed; without, each sends one (a long stream) and is
    done. With ``pace`` (seconds) a connection sends its next request that
    long after the one before was sent, not at once: a person's think time,
    during which the server sits idle. Connection starts are spread over ``ramp`` seconds from ``t0`` (a
    ``time.monotonic()`` instant shared by every driver). ``stamps`` is how
    many stamps a complete answer carries at least.
    """

    port: int
    path: str
    body: dict
    connections: int = 1
    duration: float = 5.0
    repeat: bool = True
    ramp: float = 0.0
    t0: float = 0.0
    stamps: int = 0
    pace: float = 0.0
    headers: dict = field(default_factory=dict)


@dataclass
class Results:
    """What one driver measured (seconds), and the CPU it used doing so."""

    latencies: array = field(default_factory=lambda: array("d"))
    first_chunks: array = field(default_factory=lambda: array("d"))
    delays: array = field(default_factory=lambda: array("d"))
    steady_delays: array = field(default_factory=lambda: array("d"))  # while every connection is open
    completed: int = 0
    failed: int = 0
    cpu: float = 0.0
    wall: float = 0.0


def request_bytes(job: Job) -> bytes:
    """Return the HTTP request the job sends, ready for the wire."""
    body = json.dumps(job.body).encode()
    headers = {"Host": f"127.0.0.1:{job.port}", "Content-Type": "application/json",
               "Content-Length": str(len(body)), **job.headers}
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST {job.path} HTTP/1.1\r\n{head}\r\n".encode() + body


class Answer:
    """The answer being read on one connection: framing, stamps, timings."""

    def __init__(self, sent: float, steady: tuple[float, float]):
        self.sent, self.steady = sent, steady
        self.head = b""
        self.status = 0
        self.length: int | None = None  # Content-Length, or None for chunked
        self.body_bytes = 0
        self.tail = b""  # bytes after the last newline, which may hold half a stamp
        self.last = b""  # the body's last bytes, to see the end of a chunked body
        self.first: float | None = None
        self.stamps = 0

    def feed(self, data: bytes, now: float, results: Results) -> bool:
        """Take bytes just received; return True once the answer is whole."""
        if not self.status:
            self.head += data
            end = self.head.find(_HEAD_END)
            if end < 0:
                return False
            self.status = int(self.head[9:12])
            found = _LENGTH.search(self.head, 0, end)
            self.length = int(found.group(1)) if found else None
            data, self.head = self.head[end + 4:], b""
        self.body_bytes += len(data)
        self._stamps(data, now, results)
        if self.length is not None:
            return self.body_bytes >= self.length
        self.last = (self.last + data)[-len(_END_OF_CHUNKS):]
        return self.last == _END_OF_CHUNKS

    def _stamps(self, data: bytes, now: float, results: Results) -> None:
        """Record a delay for each stamp in the whole lines received so far."""
        text = self.tail + data
        cut = text.rfind(b"\n") + 1
        steady = self.steady[0] <= now < self.steady[1]
        for found in STAMP.finditer(text, 0, cut):
            delay = now - float(found.group(1))
            results.delays.append(delay)
            if steady:
                results.steady_delays.append(delay)
            self.stamps += 1
            if self.first is None:
                self.first = now
        self.tail = text[cut:]


class Connection:
    """One client connection sending the job's request, once or back to back."""

    def __init__(self, job: Job, request: bytes):
        self.job, self.request = job, request
        self.sock = socket.create_connection(("127.0.0.1", job.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.answer: Answer | None = None
        self.due: float | None = None  # when to send the next request, if it waits for its pace

    def send(self) -> None:
        """Send the request (small enough for one send on a fresh socket buffer)."""
        job = self.job
        self.answer = Answer(time.monotonic(), (job.t0 + job.ramp + SETTLE, job.t0 + job.duration))
        if self.sock.send(self.request) != len(self.request):
            raise RuntimeError("request not sent whole")

    def readable(self, results: Results) -> bool:
        """Read what came; return False once this connection is done with."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            data = b""
        now = time.monotonic()
        if not data:
            results.failed += 1
            return False
        if not self.answer.feed(data, now, results):
            return True
        self._record(self.answer, now, results)
        if self.job.repeat and now < self.job.t0 + self.job.ramp + self.job.duration:
            if self.job.pace:
                self.due = max(now, self.answer.sent + self.job.pace)
            else:
                self.send()
            return True
        return False

    def _record(self, answer: Answer, now: float, results: Results) -> None:
        """Count a finished answer as complete or failed, and keep its timings."""
        # At least: a Responses stream repeats the text (and its stamps) in its closing events.
        whole = answer.status == 200 and answer.stamps >= self.job.stamps
        if not whole:
            results.failed += 1
            return
        results.completed += 1
        results.latencies.append(now - answer.sent)
        if answer.first is not None:
            results.first_chunks.append(answer.first - answer.sent)


def raise_open_files_limit() -> None:
    """Allow as many sockets as the hard limit does (1,000 streams need more than 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def drive(job: Job) -> Results:
    """Run the job on one epoll loop; return what it measured."""
    raise_open_files_limit()
    results, request, poller = Results(), request_bytes(job), select.epoll()
    open_conns: dict[int, Connection] = {}
    starts = [job.t0 + job.ramp * i / job.connections for i in range(job.connections)]
    deadline = job.t0 + job.ramp + job.duration + GRACE
    cpu_before, wall_before = _cpu(), time.monotonic()
    try:
        while (starts or open_conns) and time.monotonic() < deadline:
            starts = _start_due(starts, job, request, poller, open_conns)
            wait = min(0.05, max(0.0, starts[0] - time.monotonic())) if starts else 0.05
            if job.pace:
                wait = min([wait, *(_send_paced(conn) for conn in open_conns.values() if conn.due is not None)])
            for fd, _ in poller.poll(wait):
                if not open_conns[fd].readable(results):
                    _close(open_conns.pop(fd), poller)
    finally:
        results.failed += len(open_conns) + len(starts)
        for conn in open_conns.values():
            _close(conn, poller)
        poller.close()
    results.cpu, results.wall = _cpu() - cpu_before, time.monotonic() - wall_before
    return results


def _start_due(starts: list[float], job: Job, request: bytes, poller, open_conns: dict) -> list[float]:
    """Open and send on every connection whose start time has come; return the starts still ahead."""
    now, due = time.monotonic(), 0
    while due < len(starts) and starts[due] <= now:
        conn = Connection(job, request)
        open_conns[conn.sock.fileno()] = conn
        poller.register(conn.sock.fileno(), select.EPOLLIN)
        conn.send()
        due += 1
    return starts[due:]


def _send_paced(conn: Connection) -> float:
    """Send the connection's next request if its time has come; return the seconds left until then (0 if sent)."""
    left = conn.due - time.monotonic()
    if left > 0:
        return left
    conn.due = None
    conn.send()
    return 0.05


def _close(conn: Connection, poller) -> None:
    poller.unregister(conn.sock.fileno())
    conn.sock.close()


def _cpu() -> float:
    times = os.times()
    return times.user + times.system
