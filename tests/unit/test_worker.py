import select
import socket
import threading

from ollama_proxy.worker import QuickSendSocket


class _ShortSends:
    """A socket whose send takes at most ``limit`` bytes, and which records every call."""

    def __init__(self, limit: int):
        self.limit = limit
        self.calls: list[tuple[str, bytes]] = []

    def send(self, data) -> int:
        self.calls.append(("send", bytes(data[:self.limit])))
        return min(self.limit, len(data))

    def sendall(self, data) -> None:
        self.calls.append(("sendall", bytes(data)))

    def fileno(self) -> int:
        return 42


def test_a_piece_the_first_send_takes_whole_needs_no_sendall():
    sock = _ShortSends(limit=100)
    QuickSendSocket(sock).sendall(b"5\r\nhello\r\n")
    assert sock.calls == [("send", b"5\r\nhello\r\n")]


def test_what_the_first_send_leaves_goes_through_sendall():
    sock = _ShortSends(limit=4)
    QuickSendSocket(sock).sendall(b"0123456789")
    assert sock.calls == [("send", b"0123"), ("sendall", b"456789")]


def test_everything_else_is_the_socket_own():
    sock = _ShortSends(limit=1)
    assert QuickSendSocket(sock).fileno() == 42


def test_bytes_arrive_in_order_over_a_real_socket():
    left, right = socket.socketpair()
    with left, right:
        data = bytes(range(256)) * 4096  # 1 MiB: more than one send takes
        right.setblocking(False)
        left.settimeout(5)
        received = bytearray()
        reader = threading.Thread(target=_read_all, args=(right, received, len(data)))
        reader.start()
        QuickSendSocket(left).sendall(data)
        reader.join(5)
        assert bytes(received) == data


def _read_all(sock, into: bytearray, size: int) -> None:
    while len(into) < size:
        select.select([sock], [], [], 5)
        into.extend(sock.recv(65536))


def test_the_worker_is_gunicorns_gevent_worker():
    from gunicorn.workers.ggevent import GeventWorker as GunicornGeventWorker

    from ollama_proxy.worker import GeventWorker

    assert issubclass(GeventWorker, GunicornGeventWorker)


def _served_after_a_request(monkeypatch, turn: bool) -> list[str]:
    """Two connections whose data the event loop finds ready at once: one ends a request (gunicorn's own work
    left out) in the proxy's worker, or in gunicorn's without the turn, then reads on; say in which order they
    went on."""
    import gevent
    import gevent.socket
    from gunicorn.workers import ggevent

    from ollama_proxy.worker import GeventWorker

    monkeypatch.setattr(ggevent.GeventWorker, "handle_request", lambda self, *args: None)
    worker, went_on = object.__new__(GeventWorker), []
    handle_request = GeventWorker.handle_request if turn else ggevent.GeventWorker.handle_request
    other_end, other_client = gevent.socket.socketpair()
    busy_end, busy_client = gevent.socket.socketpair()

    def other_connection():
        other_end.recv(1)
        went_on.append("the other connection")

    def busy_connection():
        busy_end.recv(1)  # its answer is sent: it ends the request, its next one already there
        handle_request(worker, "listener", None, None, None)
        went_on.append("the busy connection's next request")

    waiting = [gevent.spawn(other_connection), gevent.spawn(busy_connection)]
    gevent.sleep(0.01)
    other_client.send(b"x")
    busy_client.send(b"x")
    gevent.joinall(waiting, timeout=5)
    for sock in (other_end, other_client, busy_end, busy_client):
        sock.close()
    return went_on


def test_after_each_request_the_connections_the_loop_found_ready_go_first(monkeypatch):
    # Without the turn the busy connection goes on first (the loop wakes what it found last, first).
    assert _served_after_a_request(monkeypatch, turn=False) == [
        "the busy connection's next request", "the other connection"]
    assert _served_after_a_request(monkeypatch, turn=True) == [
        "the other connection", "the busy connection's next request"]


def _taken_in_one_turn(accept_per_turn: int | None, queued: int) -> int:
    """Queue ``queued`` connections on a listening socket, build the worker's server on it (gunicorn's own, a
    gevent server taking one a turn for a worker of several, when ``accept_per_turn`` is None), and say how
    many the server takes the one time the loop finds the socket ready."""
    import socket as plain_socket

    import gevent.socket
    from gevent.pool import Pool
    from gevent.server import StreamServer

    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    clients = [plain_socket.create_connection(listener.getsockname(), timeout=5) for _ in range(queued)]
    taken = []
    worker = _worker(handle=lambda listener, client, address: taken.append(client))
    if accept_per_turn is None:
        server = StreamServer(listener, handle=lambda client, address: taken.append(client), spawn=Pool(100))
        server.max_accept = 1  # what gunicorn's run() sets with workers > 1
    else:
        worker.accept_per_turn = accept_per_turn
        server = worker.new_server(listener)
    try:
        server._do_read()  # what the loop calls when it finds the listening socket ready
        server.pool.join(timeout=5)  # each connection taken is handled in a greenlet of its own
        return len(taken)
    finally:
        for sock in (*clients, *taken, listener):
            sock.close()


def _worker(**attributes):
    """The proxy's worker as gunicorn has it once it runs, without a process of its own."""
    from types import SimpleNamespace

    from ollama_proxy.worker import GeventWorker

    worker = object.__new__(GeventWorker)
    worker.cfg = SimpleNamespace(is_ssl=False, keepalive=30)
    worker.worker_connections = 100
    worker.alive = True
    worker.__dict__.update(attributes)
    return worker


def test_a_worker_of_several_takes_up_to_accept_per_turn_new_connections_a_turn():
    assert _taken_in_one_turn(None, queued=12) == 1  # gunicorn's own, the control
    assert _taken_in_one_turn(8, queued=12) == 8
    assert _taken_in_one_turn(8, queued=3) == 3


def _running_worker(graceful_timeout: float, handle):
    """The proxy's worker running (its run(), in a greenlet) on a listening socket, with ``handle`` as what it
    does with each connection; and that socket's address."""
    import logging
    from types import SimpleNamespace

    import gevent
    import gevent.event
    import gevent.socket

    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    worker = _worker(sockets=[listener], handle=handle, notify=lambda: None, log=logging.getLogger("worker"),
                     pid=0, stop_asked=gevent.event.Event())
    worker.cfg = SimpleNamespace(is_ssl=False, graceful_timeout=graceful_timeout)
    return worker, gevent.spawn(worker.run), listener.getsockname()


def test_told_to_stop_the_worker_waits_for_its_connections_and_not_a_moment_more():
    import socket
    import time

    import gevent

    def handle(listener, client, address):
        gevent.sleep(0.5)  # a request that runs on after the stop
        client.sendall(b"done")
        client.close()

    worker, running, address = _running_worker(30, handle)
    with socket.create_connection(address, timeout=5) as client:
        gevent.sleep(0.1)  # taken
        asked = time.monotonic()
        worker.handle_exit(None, None)
        running.join(timeout=5)
        stopped = time.monotonic() - asked
        assert client.recv(10) == b"done"
    assert running.successful() and not worker.alive
    # gunicorn's own looks once a second: 1 s at least, where the request ended after 0.4 s.
    assert 0.3 < stopped < 0.9, stopped


def test_a_connection_past_the_graceful_timeout_is_ended():
    import socket

    import gevent

    ended = []

    def handle(listener, client, address):
        try:
            gevent.sleep(30)
        finally:
            ended.append(True)
            client.close()

    worker, running, address = _running_worker(0.2, handle)
    with socket.create_connection(address, timeout=5):
        gevent.sleep(0.1)
        worker.handle_exit(None, None)
        running.join(timeout=5)
    assert running.successful() and ended == [True]


def test_a_connection_handled_after_the_listening_socket_closed_is_still_answered():
    """A connection taken in the turn the worker stops runs after the listening socket is closed; gunicorn's
    handler asks that socket its name first."""
    import socket

    import gevent

    def handle(listener, client, address):
        gevent.sleep(0.3)  # the stop closes the listening socket meanwhile
        client.sendall(repr(listener.getsockname()).encode())
        client.close()

    worker, running, address = _running_worker(30, handle)
    with socket.create_connection(address, timeout=5) as client:
        gevent.sleep(0.1)  # taken
        worker.handle_exit(None, None)
        running.join(timeout=5)
        assert client.recv(100) == repr(address).encode()
    assert running.successful()
