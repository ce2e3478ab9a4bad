"""Noticing a client that hangs up, from the event loop."""

import pytest


@pytest.mark.parametrize("answer_completed, client_left", [(False, True), (True, False)],
                         ids=["left mid-answer", "hung up after reading it all"])
def test_a_client_hanging_up_counts_as_leaving_only_before_the_answer_ended(monkeypatch, answer_completed,
                                                                               client_left):
    import socket

    import gevent

    from ollama_proxy import client_watch
    from ollama_proxy.ledger import RECORD_KEY, RequestRecord

    monkeypatch.setattr(client_watch, "gevent_active", lambda: True)
    server_side, client_side = socket.socketpair()
    client_side.close()  # the client has hung up
    record = RequestRecord(request_id="r", method="POST", path="/api/chat", client="-", started=0.0,
                          completed=answer_completed)
    gone = []
    try:
        stop = client_watch.watch_client({"gunicorn.socket": server_side, RECORD_KEY: record}, lambda: gone.append(1))
        with gevent.Timeout(5):
            while not gone:
                gevent.sleep(0.001)  # the event loop polls the socket and sees the peer gone
        stop()
    finally:
        server_side.close()
    assert gone == [1]  # the upstream is cut either way
    assert record.client_left is client_left


@pytest.mark.parametrize("leaves", [True, False], ids=["client leaves", "client leaves after the answer"])
def test_a_call_that_waits_is_ended_the_moment_its_client_leaves(monkeypatch, leaves):
    import socket

    import gevent

    from ollama_proxy import client_watch
    from ollama_proxy.errors import ClientGone

    monkeypatch.setattr(client_watch, "gevent_active", lambda: True)
    server_side, client_side = socket.socketpair()
    answered = gevent.event.Event()

    def call_upstream() -> str:
        with client_watch.cancelled_if_client_leaves({"gunicorn.socket": server_side}):
            answered.wait(5)  # as a request to Ollama waits for its headers
        gevent.sleep(0.05)  # after the block, nothing is thrown in any more
        return "answered"
    waiting = gevent.spawn(call_upstream)
    gevent.sleep(0.01)
    try:
        if not leaves:
            answered.set()
            gevent.sleep(0.01)
        client_side.close()  # when the answer came first, leaving later is for the relay to see
        waiting.join(5)
    finally:
        server_side.close()
        client_side.close()
    if leaves:
        assert isinstance(waiting.exception, ClientGone)
    else:
        assert waiting.value == "answered"


@pytest.mark.parametrize("told, answers, thrown", [
    (True, True, False),  # Ollama was told to stop: the call ends as Ollama answers
    (True, False, True),  # ... and is ended when Ollama has not answered within the bound
    (False, True, True),  # the request was not all out: ended at once, as ever
], ids=["told, answered", "told, silent", "not told"])
def test_a_call_whose_client_leaves_may_wait_for_ollama_to_answer_that_it_stopped(monkeypatch, told, answers, thrown):
    import socket

    import gevent

    from ollama_proxy import client_watch
    from ollama_proxy.errors import ClientGone

    monkeypatch.setattr(client_watch, "gevent_active", lambda: True)
    server_side, client_side = socket.socketpair()
    answered, stopped = gevent.event.Event(), []

    def stop() -> bool:
        stopped.append(True)
        if answers:
            gevent.get_hub().loop.timer(0.05).start(answered.set)  # Ollama answers that it stopped, soon
        return told

    def call_upstream() -> str:
        with client_watch.cancelled_if_client_leaves({"gunicorn.socket": server_side}, stop, 0.5):
            answered.wait(5)
        gevent.sleep(0.6)  # past the bound: nothing is thrown in after the block
        return "answered"
    waiting = gevent.spawn(call_upstream)
    gevent.sleep(0.01)
    try:
        client_side.close()
        waiting.join(5)
    finally:
        server_side.close()
    assert stopped == [True]
    assert isinstance(waiting.exception, ClientGone) if thrown else waiting.value == "answered"
