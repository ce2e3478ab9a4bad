import json

import pytest

from ollama_proxy.errors import UpstreamUnavailable
from ollama_proxy.relay.streaming import (
    ClosingStream,
    ndjson_relay,
    sse_event,
    sse_event_named_by_type,
    sse_named_event,
)


def test_sse_event():
    assert sse_event({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse_event({"a": 1}, "ping") == b'event: ping\ndata: {"a":1}\n\n'


def test_sse_events_named_as_each_surface_names_them():
    assert sse_event_named_by_type({"type": "response.created"}) == (
        b'event: response.created\ndata: {"type":"response.created"}\n\n')
    assert sse_named_event(("ping", {"type": "ping"})) == b'event: ping\ndata: {"type":"ping"}\n\n'


def _failing(*chunks):
    yield from chunks
    raise UpstreamUnavailable("connection to Ollama lost mid-answer: reset")


@pytest.mark.parametrize("chunks, tail", [
    ((b'{"done":false}\n',), b'{"error":"connection to Ollama lost mid-answer: reset"}\n'),
    ((b'{"done":false}\n{"do',), b'\n{"error":"connection to Ollama lost mid-answer: reset"}\n'),
    ((), b'{"error":"connection to Ollama lost mid-answer: reset"}\n'),
])
def test_ndjson_relay_ends_a_cut_stream_with_an_error_line(chunks, tail):
    seen = []
    out = b"".join(ndjson_relay(_failing(*chunks), seen.append))
    assert out == b"".join(chunks) + tail
    assert json.loads(out.splitlines()[-1]) == {"error": "connection to Ollama lost mid-answer: reset"}
    assert [type(e) for e in seen] == [UpstreamUnavailable]


def test_ndjson_relay_passes_a_whole_stream_untouched():
    chunks = [b'{"a":1}\n', b'{"b":2}\n']
    assert list(ndjson_relay(iter(chunks), lambda e: None)) == chunks


def test_closing_stream_closes_once_even_when_never_iterated():
    closed = []

    def chunks():
        try:
            yield b"a"
        finally:
            closed.append("generator")

    stream = ClosingStream(chunks(), lambda: closed.append("upstream"))
    stream.close()
    stream.close()
    assert closed == ["upstream"]  # the generator never started, so only on_close ran

    stream = ClosingStream(chunks(), lambda: closed.append("upstream"))
    assert next(stream) == b"a"
    stream.close()
    assert closed == ["upstream", "generator", "upstream"]


@pytest.mark.parametrize("client_left, level, message", [
    (True, "INFO", "stream of POST /api/chat ended: the client left (request r1)"),
    (False, "WARNING", "stream of POST /api/chat cut: connection to Ollama lost mid-answer: reset (request r1)"),
], ids=["the client left: the proxy cut the upstream", "the upstream failed"])
def test_a_cut_stream_is_logged_as_whoever_ended_it(monkeypatch, client_left, level, message):
    import logging

    from ollama_proxy.ledger import RequestRecord
    from ollama_proxy.relay.streaming import stream_failure_logger

    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = logged.append
    logger = logging.getLogger("ollama_proxy.relay.streaming")
    monkeypatch.setattr(logger, "handlers", [handler])  # apart from whatever apps made earlier set up
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "level", logging.DEBUG)
    record = RequestRecord(request_id="r1", method="POST", path="/api/chat", client="-", started=0.0,
                           client_left=client_left)
    stream_failure_logger("POST /api/chat", record)(UpstreamUnavailable("connection to Ollama lost mid-answer: reset"))
    assert [(r.levelname, r.getMessage()) for r in logged] == [(level, message)]
