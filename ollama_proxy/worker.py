"""gunicorn's gevent worker, with a cheaper write for the small pieces a stream is made of, and a turn for the
other connections after each request.

Every chunk of every stream is one ``sendall`` on the client's socket. gevent's
``sendall`` asks the kernel for the socket's buffer size and walks several
layers of Python before it sends; one ``send`` nearly always takes the whole
piece at once, and only what it leaves goes through ``sendall``.
"""

from __future__ import annotations

import gevent
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker


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


class GeventWorker(_GeventWorker):
    """gunicorn's gevent worker, handing each connection's socket over as a QuickSendSocket, and letting the
    other connections in after each request."""

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
