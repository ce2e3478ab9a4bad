import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ollama_proxy.backends.connection import CheckedConnection, readable_now
from ollama_proxy.backends.ollama import OllamaBackend
from ollama_proxy.config import ServiceSettings


def test_an_idle_open_socket_is_not_readable_and_a_closed_peer_is():
    left, right = socket.socketpair()
    with left:
        assert not readable_now(left)
        right.close()
        assert readable_now(left)


def test_data_waiting_makes_a_socket_readable():
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"x")
        assert readable_now(left)


class _ClosingWhenAsked(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self):
        super().setup()
        type(self).connections += 1

    def do_GET(self):
        body = b'{"version":"0.12.6"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.path == "/close"

    def log_message(self, *args):
        pass


def test_the_pool_reuses_a_live_connection_and_replaces_one_the_server_closed():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosingWhenAsked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = ServiceSettings(f"http://127.0.0.1:{server.server_port}", 1.0, 5.0, 5.0, 1.0, 10, 1.0)
        backend = OllamaBackend(settings)
        assert backend.pool().ConnectionCls is CheckedConnection
        for path in ("/keep", "/keep", "/close", "/keep"):
            with backend.open("GET", path) as answer:
                assert answer.status == 200 and answer.read() == b'{"version":"0.12.6"}'
        # Reused while open; after the server closed it, noticed before the next request and reopened.
        assert _ClosingWhenAsked.connections == 2
    finally:
        server.shutdown()
        server.server_close()


class _AnswersWhenTheClientStops(BaseHTTPRequestHandler):
    """As Go's server does with a request whose client half-closed: it stops, answers that, and closes."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        ended = self.rfile.read(1)  # waits until the client says nothing more comes
        body = b'{"error":"context canceled"}' if ended == b"" else b'{"error":"unexpected"}'
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_request_sent_inside_sending_can_tell_ollama_it_stops_once_it_is_all_out():
    from ollama_proxy.backends.connection import Sending

    server = ThreadingHTTPServer(("127.0.0.1", 0), _AnswersWhenTheClientStops)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = ServiceSettings(f"http://127.0.0.1:{server.server_port}", 1.0, 5.0, 5.0, 1.0, 10, 1.0)
        sending = Sending()
        assert not sending.half_close() and sending.sent_at is None  # nothing sent yet: nothing done
        # The client leaving is told from another thread (the event loop, under gevent) while Ollama works: once
        # the request is all out, however long a busy machine takes to send it.
        def leave() -> None:
            deadline = time.monotonic() + 10
            while sending.sent_at is None and time.monotonic() < deadline:
                time.sleep(0.01)
            sending.half_close()
        leaving = threading.Thread(target=leave, daemon=True)
        leaving.start()
        with sending, OllamaBackend(settings).open("POST", "/api/chat", body=b'{"model":"m"}') as answer:
            assert answer.status == 500 and answer.read() == b'{"error":"context canceled"}'
        leaving.join(10)  # Ollama may answer before the thread that told it has noted so
        assert sending.half_closed and sending.sent_at is not None
    finally:
        server.shutdown()
        server.server_close()
