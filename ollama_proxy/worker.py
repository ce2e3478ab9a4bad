"""gunicorn's gevent worker, with a cheaper write for the small pieces a stream is made of, a turn for the
other connections after each request, and more than one new connection taken a turn.

Every chunk of every stream is one ``sendall`` on the client's socket. gevent's
``sendall`` asks the kernel for the socket's buffer size and walks several
layers of Python before it sends; one ``send`` nearly always takes the whole
piece at once, and only what it leaves goes through ``sendall``.
"""

from __future__ import annotations

import gevent
from gevent.server import StreamServer
from gunicorn.workers import ggevent
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker

ACCEPT_PER_TURN = 8  # the default of the setting OLLAMA_PROXY_ACCEPT_PER_TURN (deploy/gunicorn.conf.py)


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


class AcceptingServer(StreamServer):
    """gevent's server as gunicorn builds it, taking up to ``accept_per_turn`` new connections each time the
    event loop finds the listening socket ready, where gunicorn sets one for a worker of several.

    gunicorn takes one so that a worker does not take a burst its siblings could start sooner. But the loop
    finds the socket ready once a turn, and a turn of a saturated worker (a thousand streams) lasts tens of
    milliseconds: at one connection a turn, new requests waited seconds in the kernel's queue before any
    worker took them (bench/RESULTS.md, round seven). A few a turn keeps the burst one worker takes small.
    """

    accept_per_turn = ACCEPT_PER_TURN

    @property
    def max_accept(self) -> int:
        return self.accept_per_turn

    @max_accept.setter
    def max_accept(self, gunicorns: int) -> None:
        pass  # gunicorn's 1, set as it builds the server


class GeventWorker(_GeventWorker):
    """gunicorn's gevent worker, handing each connection's socket over as a QuickSendSocket, letting the
    other connections in after each request, and taking up to ``accept_per_turn`` new ones a turn."""

    accept_per_turn = ACCEPT_PER_TURN  # post_worker_init (deploy/gunicorn.conf.py) sets it from the environment

    def load_wsgi(self):
        super().load_wsgi()
        from ollama_proxy.store import in_use  # not at the top: gunicorn's master imports this module

        # Held while this worker lives, so that `ollama-proxy restore` refuses the store it serves from.
        self.store_in_use = in_use.hold(self.wsgi.config["SETTINGS"].store.url)

    def run(self):
        # gunicorn builds its servers in run() from the name StreamServer of its module: no other way in.
        AcceptingServer.accept_per_turn = self.accept_per_turn
        ggevent.StreamServer = AcceptingServer
        super().run()

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
