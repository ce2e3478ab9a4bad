import time

import pytest
from flask import Flask

from ollama_proxy.ledger import (
    RECORD_KEY,
    LedgerMiddleware,
    RequestRecord,
    access_record,
    after_listeners,
    hold_slot,
    note_upstream_since,
)
from ollama_proxy.surfaces import surface_of


def _app(environ, start_response):
    record = access_record(environ)
    record.model = "llama3.2"
    start_response("200 OK", [("Content-Type", "application/x-ndjson"), ("X-Request-Id", "spoof"),
                              ("Server-Timing", "spoof")])
    return iter([b"one\n", b"two\n", b"three\n"])


def _serve(environ_extra=None, listeners=(), consume=None):
    closed: list[RequestRecord] = []
    started = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=headers)

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/chat", "REMOTE_ADDR": "10.1.2.3", **(environ_extra or {})}
    middleware = LedgerMiddleware(_app, [*listeners, closed.append], lambda path: surface_of(path).name)
    body = middleware(environ, start_response)
    for count, _ in enumerate(body, 1):
        if consume is not None and count >= consume:
            break
    body.close()
    (record,) = closed
    return record, started["headers"]


def test_a_record_counts_what_the_body_sent_and_its_id_goes_out_once():
    record, headers = _serve()
    assert (record.status, record.bytes, record.completed, record.aborted) == (200, 14, True, False)
    assert record.model == "llama3.2" and record.client == "10.1.2.3" and record.surface == "native"
    assert [v for k, v in headers if k == "X-Request-Id"] == [record.request_id] and len(record.request_id) == 32
    (timing,) = [v for k, v in headers if k == "Server-Timing"]
    assert timing.startswith("proxy;dur=") and "upstream;dur=" in timing


def test_a_body_closed_early_is_recorded_once_as_aborted():
    record, _ = _serve(consume=1)
    assert record.bytes == 4 and record.aborted and not record.completed


def test_a_sane_request_id_from_the_front_proxy_is_kept_and_any_other_replaced():
    assert _serve({"HTTP_X_REQUEST_ID": "nginx-abc.123"})[0].request_id == "nginx-abc.123"
    assert _serve({"HTTP_X_REQUEST_ID": "bad id\nwith newline"})[0].request_id != "bad id\nwith newline"


def test_listeners_run_in_order_and_a_failing_one_does_not_stop_the_others():
    order = []

    def failing(record):
        order.append("failing")
        raise RuntimeError("listener bug")

    record, _ = _serve(listeners=[lambda r: order.append("first"), failing])
    assert order == ["first", "failing"] and record.completed  # the last listener got it too


def test_completion_tokens_add_provisional_chunks_to_counted_ones():
    record = RequestRecord("id", "POST", "/api/chat", "c", started=0.0)
    assert record.completion_tokens is None
    record.provisional_tokens = 3
    assert record.completion_tokens == 3
    record.counted_tokens = 10
    assert record.completion_tokens == 13


def test_a_wait_going_on_is_queue_time_and_upstream_time_since_a_moment_leaves_it_out():
    record = RequestRecord(request_id="r", method="POST", path="/api/chat", client="", started=100.0)
    record.queued, record.waiting_since = 1.0, 103.0  # it waited 1 s for one slot; waits again since 103
    assert record.queue_seconds(now=105.0) == 3.0
    assert record.server_timing(now=106.0) == "proxy;dur=2000.00, queue;dur=4000.00, upstream;dur=0.00"
    app = Flask(__name__)
    with app.test_request_context():
        from flask import request
        request.environ[RECORD_KEY] = record
        started = time.perf_counter() - 5.0
        record.waiting_since = started + 1.0  # of 5 s since, 4 were spent waiting (and 1 s before)
        note_upstream_since(started)
        assert record.upstream == pytest.approx(0.0, abs=0.05)
        record.waiting_since = None  # the wait is over, counted in ``queued``: 1 s
        note_upstream_since(started)
        assert record.upstream == pytest.approx(4.0, abs=0.05)


def test_an_answer_read_whole_says_how_long_ollama_read_the_prompt_it_had_not_cached():
    from ollama_proxy.observability.accounting import note_answer

    record = RequestRecord(request_id="r", method="POST", path="/api/chat", client="", started=100.0)
    note_answer(record, {"prompt_eval_count": 1200, "prompt_eval_duration": 250_000_000, "eval_count": 3})
    assert record.prefill_seconds == 0.25 and record.prompt_tokens == 1200
    assert record.server_timing(now=101.0).endswith(", prefill;dur=250.00")
    note_answer(record, {"prompt_eval_duration": True})
    assert record.prefill_seconds == 0.25


def _record() -> RequestRecord:
    return RequestRecord("r1", "POST", "/api/chat", "10.0.0.1", started=time.perf_counter())


def test_a_hold_whose_answer_never_reported_is_charged_its_time_and_estimated_prompt_once():
    record = _record()
    hold = hold_slot(record, lambda: 12)
    hold.granted -= 2.0  # granted two seconds ago
    hold.end()
    hold.end()
    assert record.gpu_seconds == pytest.approx(2.0, abs=0.05) and record.prompt_tokens == 12 and record.measured


def test_a_hold_whose_answer_reported_keeps_ollamas_figures_and_one_never_sent_costs_nothing():
    reported, unsent = _record(), _record()
    hold = hold_slot(reported, lambda: 12)
    reported.gpu_seconds, hold.reported = 0.5, True
    hold.end()
    hold_slot(unsent, lambda: 12).end(ran=False)
    assert (reported.gpu_seconds, reported.prompt_tokens, reported.measured) == (0.5, None, False)
    assert (unsent.gpu_seconds, unsent.prompt_tokens, unsent.measured) == (None, None, False)


def test_a_hold_is_charged_until_ollama_let_go_and_a_whole_answer_what_it_generated_meanwhile():
    record = _record()
    hold = hold_slot(record, lambda: 12)
    hold.generated = lambda seconds, prompt: round(seconds * 4) if prompt == 12 else -1
    hold.end(at=hold.granted + 1.5)  # Ollama closed 1.5 s in: what the proxy did after is not charged
    assert record.gpu_seconds == pytest.approx(1.5) and record.completion_tokens == 6 and record.prompt_tokens == 12


def test_a_refused_hold_is_charged_its_time_but_no_prompt():
    record = _record()
    hold = hold_slot(record, lambda: 12)
    hold.prompt = None
    hold.end()
    assert record.gpu_seconds is not None and record.prompt_tokens is None and record.measured


def test_work_deferred_to_the_close_runs_after_every_listener_even_one_that_failed():
    order = []

    def defer(environ, start_response):  # a slot given back while the answer is still being sent
        record = access_record(environ)
        after_listeners(record, lambda: order.append("slot given back"))
        after_listeners(record, lambda: (_ for _ in ()).throw(RuntimeError("a fault of its own")))
        after_listeners(record, lambda: order.append("second slot given back"))
        return _app(environ, start_response)

    def failing(record):
        order.append("budget charged")
        raise RuntimeError("listener bug")

    body = LedgerMiddleware(defer, [failing])({"REQUEST_METHOD": "POST", "PATH_INFO": "/api/chat"}, lambda *a: None)
    list(body)
    assert order == []
    body.close()
    assert order == ["budget charged", "slot given back", "second slot given back"]
    record = RequestRecord("r", "POST", "/api/chat", "", 0.0, listened=True)
    after_listeners(record, lambda: order.append("at once"))  # the listeners ran already
    after_listeners(None, lambda: order.append("no record"))
    assert order[-2:] == ["at once", "no record"]


def test_work_deferred_by_an_app_that_raised_runs_at_once():
    done = []

    def broken(environ, start_response):
        after_listeners(access_record(environ), lambda: done.append("slot given back"))
        raise RuntimeError("the app failed")

    with pytest.raises(RuntimeError):
        LedgerMiddleware(broken, [])({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda *a: None)
    assert done == ["slot given back"]
