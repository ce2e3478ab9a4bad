"""Keepalives each protocol's official client skips, and a stream that starts before its answer opens.

The clients read canned bodies through their HTTP library's mock transport: nothing leaves the process.
"""

from __future__ import annotations

import importlib
import threading

import anthropic
import httpx
import ollama
import openai
import pytest

from ollama_proxy.errors import Overloaded, ProxyError, UpstreamError
from ollama_proxy.ledger import RequestRecord
from ollama_proxy.lines import ndjson_line
from ollama_proxy.relay.streaming import SSE_DONE, sse_event, sse_named_event
from ollama_proxy.relay.waiting import (
    AnswerAfterWait,
    Opening,
    ndjson_keepalive,
    pings,
    sse_keepalive,
)
from ollama_proxy.translate.anthropic.stream import MessagesStreamConverter
from ollama_proxy.translate.openai_chat_response import ChatStreamConverter
from tests.unit.translate.new_ids import counter_ids

CHUNKS = [
    {"model": "m", "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", "content": "Hel"},
     "done": False},
    {"model": "m", "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", "content": "lo"},
     "done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 2},
]
HELLO = [{"role": "user", "content": "hi"}]
TIMED_OUT = "no slot came free for m within 600s (scheduling.max_wait)"


def _answering(http, body: bytes, content_type: str):
    """Return a transport of ``http`` (httpx, or an SDK's own) that answers every request with ``body``."""
    return http.MockTransport(lambda request: http.Response(200, headers={"Content-Type": content_type},
                                                            content=body))


def _sdk_http(sdk):
    return importlib.import_module(sdk.DefaultHttpxClient.__mro__[1].__module__)


def _ollama_chat(body: bytes) -> str:
    with ollama.Client(host="http://ollama.test", transport=_answering(httpx, body, "application/x-ndjson")) as client:
        return "".join(part.message.content for part in client.chat(model="m", messages=HELLO, stream=True))


def _openai_chat(body: bytes) -> str:
    http = _sdk_http(openai)
    http_client = http.Client(transport=_answering(http, body, "text/event-stream"))
    with openai.OpenAI(base_url="http://proxy.test/v1", api_key="k", http_client=http_client) as client:
        stream = client.chat.completions.create(model="m", messages=HELLO, stream=True)
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def _anthropic_message(body: bytes) -> str:
    http = _sdk_http(anthropic)
    http_client = http.Client(transport=_answering(http, body, "text/event-stream"))
    with anthropic.Anthropic(base_url="http://proxy.test", api_key="k", http_client=http_client) as client:
        with client.messages.stream(model="m", max_tokens=8, messages=HELLO) as stream:
            return stream.get_final_message().content[0].text


def _openai_frames(converter: ChatStreamConverter, chunks: list[dict]) -> bytes:
    return b"".join(sse_event(frame) for chunk in chunks for frame in converter.process(chunk))


def _anthropic_events(converter: MessagesStreamConverter, chunks: list[dict]) -> bytes:
    return b"".join(sse_named_event(event) for chunk in chunks for event in converter.process(chunk))


def test_the_native_keepalive_is_a_space_the_ollama_client_reads_past():
    assert ndjson_keepalive() == [b" "]  # an empty line would be a JSON error to the ollama clients
    body = b"".join(ndjson_keepalive() * 3) + b"".join(ndjson_line(chunk) for chunk in CHUNKS)
    assert _ollama_chat(body) == "Hello"
    with pytest.raises(ollama.ResponseError, match="no slot came free"):
        _ollama_chat(b"".join(ndjson_keepalive() * 3) + ndjson_line({"error": TIMED_OUT}))


def test_the_sse_keepalive_is_a_comment_the_openai_client_skips():
    assert sse_keepalive() == [b": keepalive\n\n"]
    converter = ChatStreamConverter("chatcmpl-1", 0, "m", new_id=counter_ids())
    body = b"".join(sse_keepalive() * 2) + _openai_frames(converter, CHUNKS) + SSE_DONE
    assert _openai_chat(body) == "Hello"
    failing = ChatStreamConverter("chatcmpl-1", 0, "m", new_id=counter_ids())
    body = b"".join(sse_keepalive() * 2) + b"".join(sse_event(frame) for frame in failing.fail(TIMED_OUT)) + SSE_DONE
    with pytest.raises(openai.APIError, match="no slot came free"):
        _openai_chat(body)


def test_anthropic_pings_come_after_message_start_and_the_sdk_skips_them_even_before():
    converter = MessagesStreamConverter("msg_1", "m", new_id=counter_ids())
    keepalive = pings(converter, sse_named_event)
    waited = keepalive() + keepalive()
    assert waited[0].startswith(b"event: message_start\n")
    assert waited[1:] == [b'event: ping\ndata: {"type":"ping"}\n\n'] * 2
    assert _anthropic_message(b"".join(waited) + _anthropic_events(converter, CHUNKS)) == "Hello"
    # Anthropic's SDK drops pings before it reads anything else: a bare ping first would do as well.
    bare = sse_named_event(("ping", {"type": "ping"}))
    fresh = MessagesStreamConverter("msg_1", "m", new_id=counter_ids())
    assert _anthropic_message(bare * 2 + _anthropic_events(fresh, CHUNKS)) == "Hello"
    failing = MessagesStreamConverter("msg_1", "m", new_id=counter_ids())
    body = b"".join(pings(failing, sse_named_event)()) + b"".join(map(sse_named_event, failing.fail(TIMED_OUT)))
    with pytest.raises(anthropic.APIStatusError, match="no slot came free"):
        _anthropic_message(body)


class Answer:
    def __init__(self) -> None:
        self.closed = self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


class Upstream:
    """An answer that opens when the test says so: after its slot is granted (``send``) and Ollama answers."""

    def __init__(self) -> None:
        self.environ: dict = {}
        self.record = RequestRecord("r", "POST", "/api/chat", "-", 0.0, slots_awaited=1)  # as the dispatcher counts
        self.answer = Answer()
        self.error: Exception | None = None
        self._answered = threading.Event()

    def open(self) -> Answer:
        self._answered.wait(10)
        if self.error is not None:
            raise self.error
        return self.answer

    def send(self) -> None:
        self.record.slots_awaited -= 1

    def respond(self, error: Exception | None = None) -> None:
        self.error = error
        self._answered.set()


@pytest.fixture
def upstream():
    upstream = Upstream()
    yield upstream
    upstream.respond()  # the opening's thread ends


def test_an_answer_that_opens_within_the_interval_is_the_response_as_ever(upstream):
    opening = Opening(upstream.open, upstream.record)
    assert opening.waiting_for_slot
    upstream.send()
    upstream.respond()
    assert opening.settle(interval=10.0)
    assert opening.result() is upstream.answer


def test_a_request_still_waiting_for_its_slot_after_the_interval_starts_its_stream(upstream):
    opening = Opening(upstream.open, upstream.record)
    assert not opening.settle(interval=0.01)


def test_a_granted_request_waits_past_the_interval_for_its_answer_in_silence(upstream):
    opening = Opening(upstream.open, upstream.record)
    upstream.send()
    threading.Timer(0.05, upstream.respond).start()
    assert opening.settle(interval=0.01)  # only returned when the answer came
    assert opening.result() is upstream.answer


def test_with_a_deadline_the_stream_starts_even_after_the_grant(upstream):
    opening = Opening(upstream.open, upstream.record)
    upstream.send()
    assert not opening.settle(interval=10.0, deadline=0.01)


def test_a_providers_request_waits_for_no_slot(upstream):
    upstream.record.slots_awaited = 0  # nothing of it waits for a slot
    opening = Opening(upstream.open, upstream.record)
    threading.Timer(0.05, upstream.respond).start()
    assert opening.settle(interval=0.01)


def test_why_an_answer_did_not_open_is_raised_where_it_is_taken(upstream):
    opening = Opening(upstream.open, upstream.record)
    upstream.respond(Overloaded(TIMED_OUT))
    with pytest.raises(Overloaded, match="scheduling.max_wait"):
        opening.result()


def test_an_answer_that_opens_after_its_response_closed_is_closed(upstream):
    opening = Opening(upstream.open, upstream.record)
    opening.abandon()
    upstream.respond()
    opening.settle(interval=10.0)
    assert upstream.answer.closed


def _body(opening: Opening, environ: dict, relayed: list[bytes] | Exception = ()) -> AnswerAfterWait:
    def relay(answer: Answer):
        if isinstance(relayed, Exception):
            raise relayed
        return iter(relayed)
    return AnswerAfterWait(opening, environ, 0.01, keepalive=lambda: [b"."], relay=relay,
                           fail=lambda error: [f"error: {error.message}".encode()])


def test_a_waiting_stream_sends_keepalives_until_its_answer_then_the_answer(upstream):
    opening = Opening(upstream.open, upstream.record)
    body = _body(opening, upstream.environ, [b"answer"])
    assert next(body) == b"."  # at once: the response's headers go out with it
    assert next(body) == b"."
    upstream.respond()
    assert list(body)[-1:] == [b"answer"]
    body.close()
    assert upstream.answer.closed


@pytest.mark.parametrize("error", [Overloaded(TIMED_OUT), UpstreamError("model not found", status=404)],
                         ids=["the wait timed out", "an error status"])
def test_a_waiting_stream_that_fails_ends_with_the_error_in_its_protocol(upstream, error: ProxyError):
    opening = Opening(upstream.open, upstream.record)
    if isinstance(error, Overloaded):
        body = _body(opening, upstream.environ)
        upstream.respond(error)
    else:
        body = _body(opening, upstream.environ, error)  # the answer came, with an error status
        upstream.respond()
    assert list(body)[-1] == f"error: {error.message}".encode()


def test_a_waiting_stream_closed_before_its_answer_closes_the_answer_when_it_comes(upstream):
    opening = Opening(upstream.open, upstream.record)
    body = _body(opening, upstream.environ, [b"answer"])
    assert next(body) == b"."
    body.close()
    body.close()
    upstream.respond()
    opening.settle(interval=10.0)
    assert upstream.answer.closed and not upstream.answer.aborted
