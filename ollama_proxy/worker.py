"""gunicorn's gevent worker, with a cheaper write for the small pieces a stream is made of.

Every chunk of every stream is one ``sendall`` on the client's socket. gevent's
``sendall`` asks the kernel for the socket's buffer size and walks several
layers of Python before it sends; one ``send`` nearly always takes the whole
piece at once, and only what it leaves goes through ``sendall``.
"""

from __future__ import annotations

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
    """gunicorn's gevent worker, handing each connection's socket over as a QuickSendSocket."""

    def handle(self, listener, client, addr):
        # A TLS socket stays as it is: gunicorn and ssl look at its type.
        super().handle(listener, client if self.cfg.is_ssl else QuickSendSocket(client), addr)
