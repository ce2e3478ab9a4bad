"""gunicorn's gevent worker, with a cheaper write for the small pieces a stream is made of, a turn for the
other connections after each request, more than one new connection taken a turn, and a stop that ends as
soon as its connections do.

Every chunk of every stream is one ``sendall`` on the client's socket. gevent's
``sendall`` asks the kernel for the socket's buffer size and walks several
layers of Python before it sends; one ``send`` nearly always takes the whole
piece at once, and only what it leaves goes through ``sendall``.
"""

from __future__ import annotations

import os
import signal
import time
from functools import partial

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker

ACCEPT_PER_TURN = 8  # the default of the setting OLLAMA_PROXY_ACCEPT_PER_TURN (deploy/gunicorn.conf.py)
HEARTBEAT_SECONDS = 1.0  # how often a worker tells gunicorn's master it lives, as gunicorn's own does


class QuickSendSocket:
    """A client socket whose ``sendall`` tries one ``send`` first; everything else is the socket's own."""

    __slots__ = ("_sock", "send")

    def __init__(self, sock):
        self._sock = sock
        self.send = sock.send

    def sendall(self, data) -> None:
        sent = self.send(data)
        if sent < len(data):
            self._sock.sendall(memoryview(data)[sent:])

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class ListenerName:
    """The listening socket as a connection's handler sees it: its name, taken when the server is built.

    A connection accepted in the turn the worker is told to stop is handled after the listening socket is
    closed; gunicorn's handler then asks the socket its name, fails, and resets the connection.
    """

    __slots__ = ("_name",)

    def __init__(self, sock):
        self._name = sock.getsockname()

    def getsockname(self):
        return self._name


class GeventWorker(_GeventWorker):
    """gunicorn's gevent worker, handing each connection's socket over as a QuickSendSocket, letting the
    other connections in after each request, taking up to ``accept_per_turn`` new ones a turn, and, told to
    stop, exiting as soon as its last connection ends.

    gunicorn's own notices a stop up to a second late (Python runs a signal's handler only when the event
    loop next runs Python code, and its main loop looks once a second) and then looks once a second whether
    its connections have ended: a stop or a reload took 1.2 s with nothing running.

    A connection idle between two requests is still kept until its keep-alive ends, as gunicorn keeps it:
    closed by the server at the moment nginx writes a request on it, a POST would fail with a 502. nginx
    closes it first (its keepalive_timeout, deploy/nginx.conf).
    """

    accept_per_turn = ACCEPT_PER_TURN  # post_worker_init (deploy/gunicorn.conf.py) sets it from the environment

    def load_wsgi(self):
        super().load_wsgi()
        from ollama_proxy.store import in_use  # not at the top: gunicorn's master imports this module

        # Held while this worker lives, so that `ollama-proxy restore` refuses the store it serves from.
        self.store_in_use = in_use.hold(self.wsgi.config["SETTINGS"].store.url)

    def init_signals(self):
        super().init_signals()
        self.stop_asked = Event()
        # In the event loop, at once: Python's own handler runs only when the loop next runs Python code.
        self.term_watcher = gevent.signal_handler(signal.SIGTERM, self.handle_exit, signal.SIGTERM, None)
        for signum in getattr(self, "early_signals", ()):  # kept since the fork (deploy/gunicorn.conf.py)
            os.kill(os.getpid(), signum)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        self.stop_asked.set()

    def run(self):
        servers = [self.new_server(sock) for sock in self.sockets]
        for server in servers:
            server.start()
        while self.alive:
            self.notify()
            self.stop_asked.wait(HEARTBEAT_SECONDS)
        for server in servers:
            server.close()  # no new connections
        self._wait_for_connections(servers)

    def new_server(self, sock) -> StreamServer:
        ssl_args = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        sock.setblocking(1)
        server = StreamServer(sock, handle=partial(self.handle, ListenerName(sock)),
                              spawn=Pool(self.worker_connections), **ssl_args)
        # gunicorn takes one new connection a turn for a worker of several, so that one worker does not take
        # a burst its siblings could start sooner. But the loop finds the listening socket ready once a turn,
        # and a turn of a saturated worker (a thousand streams) lasts tens of milliseconds: at one a turn,
        # new requests waited seconds in the kernel's queue (bench/RESULTS.md, round seven).
        server.max_accept = self.accept_per_turn
        return server

    def _wait_for_connections(self, servers: list[StreamServer]) -> None:
        deadline = time.monotonic() + self.cfg.graceful_timeout
        for server in servers:
            while not server.pool.join(timeout=min(HEARTBEAT_SECONDS, max(deadline - time.monotonic(), 0))):
                if time.monotonic() >= deadline:
                    self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                    for each in servers:
                        each.stop(timeout=1)
                    return
                self.notify()

    def handle(self, listener, client, addr):
        # A TLS socket stays as it is: gunicorn and ssl look at its type.
        super().handle(listener, client if self.cfg.is_ssl else QuickSendSocket(client), addr)

    def handle_request(self, listener_name, req, sock, addr):
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            # A keep-alive client (nginx above all) sends its next request as the answer ends, while the
            # request's close work still runs. Read at once, without a turn, that request would run before
            # those of the other connections the event loop found ready: one busy connection served again
            # and again while the others wait.
            gevent.sleep(0)
