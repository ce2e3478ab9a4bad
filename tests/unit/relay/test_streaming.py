import json

import pytest

from ollama_proxy.errors import UpstreamUnavailable
from ollama_proxy.ledger import LedgerMiddleware, access_record
from ollama_proxy.relay.streaming import (
    HEARTBEAT,
    ClosingStream,
    encoded_frames,
    ndjson_failure,
    relayed,
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
def test_a_relayed_ndjson_stream_ends_a_cut_stream_with_an_error_line(chunks, tail):
    seen = []
    out = b"".join(relayed(_failing(*chunks), seen.append, ndjson_failure))
    assert out == b"".join(chunks) + tail
    assert json.loads(out.splitlines()[-1]) == {"error": "connection to Ollama lost mid-answer: reset"}
    assert [type(e) for e in seen] == [UpstreamUnavailable]


def test_a_relayed_ndjson_stream_passes_a_whole_stream_untouched():
    chunks = [b'{"a":1}\n', b'{"b":2}\n']
    assert list(relayed(iter(chunks), pytest.fail, ndjson_failure)) == chunks


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


@pytest.fixture
def logged(monkeypatch):
    """Return the list the stream module's log lines go to, apart from whatever apps made earlier set up."""
    import logging

    lines: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lines.append
    logger = logging.getLogger("ollama_proxy.relay.streaming")
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "level", logging.DEBUG)
    return lines


def _record(client_left: bool):
    from ollama_proxy.ledger import RequestRecord

    return RequestRecord(request_id="r1", method="POST", path="/api/chat", client="-", started=0.0,
                         client_left=client_left)


@pytest.mark.parametrize("client_left, said", [
    (True, []),
    (False, [("WARNING", "stream of POST /api/chat cut: connection to Ollama lost mid-answer: reset (request r1)")]),
], ids=["the client left: told at the close", "the upstream failed"])
def test_a_cut_stream_is_logged_as_whoever_ended_it(logged, client_left, said):
    from ollama_proxy.relay.streaming import stream_failure_logger

    stream_failure_logger("POST /api/chat", _record(client_left))(
        UpstreamUnavailable("connection to Ollama lost mid-answer: reset"))
    assert [(r.levelname, r.getMessage()) for r in logged] == said


@pytest.mark.parametrize("client_left, said", [
    (True, [("INFO", "stream of POST /api/chat ended: the client left (request r1)")]),
    (False, []),
], ids=["the client left", "it read to the end"])
def test_a_stream_whose_client_left_says_so_when_it_closes_however_the_upstream_ended(logged, client_left, said):
    """With the cut hold Ollama may end its answer cleanly after the proxy told it to stop: no error is seen."""
    stream = ClosingStream(iter([b"one\n"]), lambda: None, _record(client_left))
    assert list(stream) == [b"one\n"]
    stream.close()
    stream.close()
    assert [(r.levelname, r.getMessage()) for r in logged] == said


@pytest.mark.parametrize("consume, sent, completed", [(None, 14, True), (1, 4, False)])
def test_a_stream_under_the_ledger_counts_what_it_sent_itself_and_is_closed_once(consume, sent, completed):
    closed, records = [], []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/x-ndjson")])
        return ClosingStream(iter([b"one\n", b"two\n", b"three\n"]), lambda: closed.append("upstream"),
                             access_record(environ))

    body = LedgerMiddleware(app, [records.append])({"REQUEST_METHOD": "POST", "PATH_INFO": "/api/chat"},
                                                   lambda *args: None)
    iterator = iter(body)
    assert isinstance(iterator, ClosingStream)  # the server reads the stream itself: no ledger step per chunk
    for count, _ in enumerate(iterator, 1):
        if count == consume:
            break
    body.close()
    (record,) = records
    assert (record.bytes, record.completed, record.first_byte is not None, closed) == (sent, completed, True,
                                                                                        ["upstream"])


class _Echo:
    """A converter that frames each chunk's text, pings on a heartbeat, and finishes at ``done``."""

    def __init__(self):
        self.finished = False

    def process(self, chunk):
        self.finished = bool(chunk.get("done"))
        return [chunk["text"]]

    def ping(self):
        return ["ping"]

    def close(self):
        return ["closed"]

    def fail(self, message):
        return [f"failed: {message}"]


@pytest.mark.parametrize("chunks, frames", [
    ([{"text": "a"}, HEARTBEAT, {"text": "b", "done": True}, {"text": "never"}], ["a", "ping", "b"]),
    ([{"text": "a"}], ["a", "closed"]),
])
def test_encoded_frames_converts_and_encodes_each_chunk_until_the_converter_is_done(chunks, frames):
    assert list(encoded_frames(iter(chunks), _Echo(), str.encode, pytest.fail)) == [f.encode() for f in frames]


def test_encoded_frames_ends_a_failed_source_with_the_converters_error_frame():
    seen = []
    out = list(encoded_frames(_failing({"text": "a"}), _Echo(), str.encode, seen.append))
    assert out == [b"a", b"failed: connection to Ollama lost mid-answer: reset"]
    assert [type(e) for e in seen] == [UpstreamUnavailable]
