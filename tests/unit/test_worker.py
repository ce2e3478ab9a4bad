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


def _taken_in_one_turn(server_class, queued: int) -> int:
    """Queue ``queued`` connections on a listening socket, build ``server_class`` on it as gunicorn does for a
    worker of several (``max_accept = 1``), and say how many the server takes the one time the loop finds the
    socket ready."""
    import socket as plain_socket

    import gevent.socket
    from gevent.pool import Pool

    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    clients = [plain_socket.create_connection(listener.getsockname(), timeout=5) for _ in range(queued)]
    taken, pool = [], Pool(100)
    server = server_class(listener, handle=lambda client, address: taken.append(client), spawn=pool)
    server.max_accept = 1  # what gunicorn's run() sets with workers > 1
    try:
        server._do_read()  # what the loop calls when it finds the listening socket ready
        pool.join(timeout=5)  # each connection taken is handled in a greenlet of its own
        return len(taken)
    finally:
        for sock in (*clients, *taken, listener):
            sock.close()


def test_a_worker_of_several_takes_up_to_accept_per_turn_new_connections_a_turn(monkeypatch):
    from gevent.server import StreamServer

    from ollama_proxy.worker import AcceptingServer

    monkeypatch.setattr(AcceptingServer, "accept_per_turn", 8)
    assert _taken_in_one_turn(StreamServer, queued=12) == 1  # gunicorn's own, the control
    assert _taken_in_one_turn(AcceptingServer, queued=12) == 8
    assert _taken_in_one_turn(AcceptingServer, queued=3) == 3


def test_gunicorn_builds_the_server_the_worker_names(monkeypatch):
    import inspect

    from gunicorn.workers import ggevent

    from ollama_proxy.worker import AcceptingServer, GeventWorker

    # The worker swaps the class behind the name gunicorn's run() builds its servers from, and lets it set 1.
    source = inspect.getsource(ggevent.GeventWorker.run)
    assert "server = StreamServer(s, handle=hfun" in source and "server.max_accept = 1" in source
    monkeypatch.setattr(ggevent, "StreamServer", ggevent.StreamServer)  # restored after the test
    monkeypatch.setattr(AcceptingServer, "accept_per_turn", AcceptingServer.accept_per_turn)
    monkeypatch.setattr(ggevent.GeventWorker, "run", lambda self: None)
    worker = object.__new__(GeventWorker)
    worker.accept_per_turn = 5
    worker.run()
    assert ggevent.StreamServer is AcceptingServer and AcceptingServer.accept_per_turn == 5
