"""Run under gevent: a stream read in one greenlet and closed from another must end the reader.

Started by test_ollama_gevent.py in its own process (the test process is not
monkey-patched). Prints what became of the reader, on one line.
"""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402

import gevent  # noqa: E402

from ollama_proxy.backends.ollama import OllamaBackend  # noqa: E402
from ollama_proxy.config import ServiceSettings  # noqa: E402
from ollama_proxy.errors import ProxyError  # noqa: E402

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"


def stalling_upstream(listener: socket.socket) -> None:
    """Answer one request with a chunk or two, then stay silent."""
    connection, _ = listener.accept()
    connection.recv(65536)
    connection.sendall(HEAD + b'8\r\n{"a":1}\n\r\n')
    gevent.sleep(0.1)
    connection.sendall(b'8\r\n{"b":2}\n\r\n')
    gevent.sleep(30)


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    gevent.spawn(stalling_upstream, listener)
    settings = ServiceSettings(f"http://127.0.0.1:{listener.getsockname()[1]}", 1.0, 5.0, 60.0, 1.0, 10, 1.0)
    upstream = OllamaBackend(settings).open("POST", "/api/chat", body=b"{}")
    got: list[bytes] = []

    def read() -> str:
        try:
            for piece in upstream.iter_bytes():
                got.append(piece)
        except ProxyError as exc:
            return f"ended with an error: {exc.message}"
        return "ended without an error"

    reader = gevent.spawn(read)
    while len(got) < 2:
        gevent.sleep(0.01)
    gevent.sleep(0.05)  # the reader waits for a third piece that never comes
    upstream.close()
    reader.join(timeout=2)
    print(f"pieces {len(got)}; " + (reader.value if reader.dead else "reader still waiting"))


main()
