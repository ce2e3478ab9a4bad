"""Upstream faults on every surface: killed, garbled, slow to start, stalled, and a client that leaves.

Once a stream has started its status line is gone, so a failure must arrive as the last frame of
the surface's own protocol (an NDJSON ``{"error"}`` line, an OpenAI error chunk then ``[DONE]``, an
Anthropic ``error`` event, a Responses ``response.failed``), and the HTTP body must still end
properly (the final zero-length chunk), never as a cut connection or a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from tests.e2e.bare_socket import post_json
from tests.e2e.conftest import auth, base_config
from tests.e2e.server import ProxyServer

MODEL = "llama3.2:latest"
HELLO = [{"role": "user", "content": "hello"}]
REPLY = "a b c d e f"


@dataclass
class Outcome:
    """What a client made of one streamed answer."""

    text: str  # the generated text, joined
    error: str | None  # the message of the closing error frame, if any
    finished: bool  # the protocol's own successful end was seen
    arrivals: list[float]  # time.monotonic() of each frame that carried text, then of the last frame


def _lines(answer: requests.Response) -> list[tuple[float, str]]:
    """Read the whole body as timed lines; raises ChunkedEncodingError if the body is cut."""
    return [(time.monotonic(), line) for line in answer.iter_lines(decode_unicode=True)]


def _sse(answer: requests.Response) -> list[tuple[float, str | None, str]]:
    """Return the body's SSE events as (arrival, event name, data)."""
    events, name = [], None
    for at, line in _lines(answer):
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((at, name, line.removeprefix("data: ")))
            name = None
    return events


def read_native(answer: requests.Response) -> Outcome:
    lines = [(at, json.loads(line)) for at, line in _lines(answer) if line.strip()]
    errors = [i for i, (_, line) in enumerate(lines) if "error" in line]
    assert errors in ([], [len(lines) - 1]), f"an error line that is not the last one: {lines}"
    parts = [(at, (line.get("message") or {}).get("content", line.get("response", ""))) for at, line in lines
             if "error" not in line and not line.get("done")]
    return Outcome(text="".join(text for _, text in parts),
                   error=lines[-1][1]["error"] if errors else None,
                   finished=bool(lines) and lines[-1][1].get("done") is True,
                   arrivals=[at for at, text in parts if text] + [lines[-1][0]])


def _read_openai(answer: requests.Response, text_of: Callable[[dict], str]) -> Outcome:
    events = _sse(answer)
    assert events and events[-1][2] == "[DONE]", "an OpenAI stream must end with data: [DONE]"
    frames = [(at, json.loads(data)) for at, _, data in events[:-1]]
    errors = [i for i, (_, frame) in enumerate(frames) if "error" in frame]
    assert errors in ([], [len(frames) - 1]), "the error chunk must be the last one before [DONE]"
    parts = [(at, text_of(frame["choices"][0])) for at, frame in frames if frame.get("choices")]
    error = frames[-1][1]["error"] if errors else None
    if error is not None:
        assert set(error) >= {"message", "type"}
    reasons = [frame["choices"][0].get("finish_reason") for _, frame in frames if frame.get("choices")]
    return Outcome(text="".join(text for _, text in parts), error=error and error["message"],
                   finished=not errors and "stop" in reasons,
                   arrivals=[at for at, text in parts if text] + [events[-1][0]])


def read_openai_chat(answer: requests.Response) -> Outcome:
    return _read_openai(answer, lambda choice: choice["delta"].get("content") or "")


def read_openai_completion(answer: requests.Response) -> Outcome:
    return _read_openai(answer, lambda choice: choice.get("text") or "")


def read_anthropic(answer: requests.Response) -> Outcome:
    events = [(at, name, json.loads(data)) for at, name, data in _sse(answer)]
    names = [name for _, name, _ in events]
    assert names[0] == "message_start"
    assert "error" not in names[:-1], f"events after the error event: {names}"
    parts = [(at, data["delta"]["text"]) for at, name, data in events
             if name == "content_block_delta" and data["delta"]["type"] == "text_delta"]
    last = events[-1][2]
    if names[-1] == "error":
        assert last["type"] == "error" and set(last["error"]) >= {"type", "message"}
    return Outcome(text="".join(text for _, text in parts),
                   error=last["error"]["message"] if names[-1] == "error" else None,
                   finished=names[-1] == "message_stop",
                   arrivals=[at for at, _ in parts] + [events[-1][0]])


def read_responses(answer: requests.Response) -> Outcome:
    events = [(at, name, json.loads(data)) for at, name, data in _sse(answer)]
    names = [name for _, name, _ in events]
    assert names[0] == "response.created"
    assert all(name == data["type"] for _, name, data in events)
    ends = {"response.completed", "response.failed", "response.incomplete"}
    assert not ends & set(names[:-1]), f"events after the end: {names}"
    parts = [(at, data["delta"]) for at, name, data in events if name == "response.output_text.delta"]
    last = events[-1][2]
    failed = names[-1] == "response.failed"
    if failed:
        assert last["response"]["status"] == "failed"
    return Outcome(text="".join(text for _, text in parts),
                   error=last["response"]["error"]["message"] if failed else None,
                   finished=names[-1] == "response.completed",
                   arrivals=[at for at, _ in parts] + [events[-1][0]])


@dataclass(frozen=True)
class Surface:
    path: str
    body: dict
    read: Callable[[requests.Response], Outcome]
    error_of: Callable[[dict], str]  # the message of a plain (non-stream) error body
    content_type: str


def _ollama_error(body: dict) -> str:
    assert isinstance(body["error"], str)
    return body["error"]


def _openai_error(body: dict) -> str:
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]["message"]


def _anthropic_error(body: dict) -> str:
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return body["error"]["message"]


NDJSON, SSE = "application/x-ndjson", "text/event-stream"
SURFACES = {
    "native-chat": Surface("/api/chat", {"model": "llama3.2", "messages": HELLO},
                           read_native, _ollama_error, NDJSON),
    "native-generate": Surface("/api/generate", {"model": "llama3.2", "prompt": "hello"},
                               read_native, _ollama_error, NDJSON),
    "openai-chat": Surface("/v1/chat/completions", {"model": "llama3.2", "messages": HELLO, "stream": True},
                           read_openai_chat, _openai_error, SSE),
    "openai-completions": Surface("/v1/completions", {"model": "llama3.2", "prompt": "hello", "stream": True},
                                  read_openai_completion, _openai_error, SSE),
    "anthropic": Surface("/v1/messages", {"model": "llama3.2", "max_tokens": 64, "messages": HELLO, "stream": True},
                         read_anthropic, _anthropic_error, SSE),
    "responses": Surface("/v1/responses", {"model": "llama3.2", "input": "hello", "stream": True},
                         read_responses, _openai_error, SSE),
}
TRANSLATED = [name for name in SURFACES if not name.startswith("native")]


def stream(proxy: ProxyServer, surface: Surface, timeout: float = 30) -> Outcome:
    """Run one streamed request to the end and read it as the surface's client would."""
    with requests.post(proxy.url + surface.path, json=surface.body, headers=auth(), stream=True,
                       timeout=timeout) as answer:
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith(surface.content_type)
        return surface.read(answer)


def _log_files(proxy: ProxyServer) -> list:
    return [proxy.stderr_path, proxy.log_dir / "error.log"]


@pytest.fixture
def no_traceback():
    """Return a check that a proxy wrote no traceback (stderr, error log) since the test began.

    Only what the test's own requests wrote is read: the session proxy is shared, and one
    test's traceback must not fail the next.
    """
    marks: dict = {}

    def check(proxy: ProxyServer) -> None:
        for path in _log_files(proxy):
            text = path.read_bytes()[marks.get(path, 0):].decode(errors="replace") if path.exists() else ""
            assert "Traceback" not in text, text[-4000:]

    def mark(proxy: ProxyServer) -> None:
        for path in _log_files(proxy):
            marks[path] = path.stat().st_size if path.exists() else 0

    check.mark = mark
    return check


@pytest.fixture
def proxy(proxy, no_traceback):
    no_traceback.mark(proxy)
    return proxy


@pytest.mark.parametrize("name", SURFACES)
def test_upstream_killed_mid_stream_ends_with_the_protocols_error_frame(proxy, fake, name, no_traceback):
    fake.script(MODEL, reply=REPLY, drop_after=2)
    outcome = stream(proxy, SURFACES[name])
    assert outcome.text == "a b "
    assert outcome.error is not None and "lost mid-answer" in outcome.error
    assert not outcome.finished
    no_traceback(proxy)


@pytest.mark.parametrize("name", TRANSLATED)
def test_a_line_that_is_not_json_mid_stream_ends_with_the_protocols_error_frame(proxy, fake, name, no_traceback):
    fake.script(MODEL, reply=REPLY, bad_line_after=2, chunk_delay=0.05)
    outcome = stream(proxy, SURFACES[name])
    assert outcome.text == "a b "
    assert outcome.error is not None and "not JSON" in outcome.error
    fake.wait_for(lambda: fake.streams[-1].closed_at is not None)
    assert not fake.streams[-1].completed, "the proxy kept reading a stream it had given up on"
    no_traceback(proxy)


@pytest.mark.parametrize("name", SURFACES)
def test_upstream_killed_before_answering_is_a_502_in_the_surfaces_shape(proxy, fake, name, no_traceback):
    surface = SURFACES[name]
    fake.script(MODEL, reply=REPLY, drop_after=0)
    answer = requests.post(proxy.url + surface.path, json=surface.body, headers=auth(), timeout=30)
    assert answer.status_code == 502
    assert answer.headers["Content-Type"] == "application/json"
    assert surface.error_of(answer.json())
    no_traceback(proxy)


@pytest.mark.parametrize("name", SURFACES)
def test_upstream_killed_during_a_whole_answer_is_a_502_in_the_surfaces_shape(proxy, fake, name, no_traceback):
    surface = SURFACES[name]
    fake.script(MODEL, reply=REPLY, drop_after=2)
    answer = requests.post(proxy.url + surface.path, json={**surface.body, "stream": False}, headers=auth(),
                           timeout=30)
    assert answer.status_code == 502
    assert answer.headers["Content-Type"] == "application/json"
    assert surface.error_of(answer.json())
    no_traceback(proxy)


def _hang_up_mid_stream(proxy: ProxyServer, path: str, body: dict) -> float:
    """Start a stream over a bare socket, read three text chunks, hang up; return when."""
    with post_json(proxy, path, body, timeout=10) as sock:
        received = b""
        while received.count(b"tok ") < 3:
            piece = sock.recv(65536)
            assert piece, f"the proxy closed the stream early: {received[-500:]!r}"
            received += piece
    return time.monotonic()


@pytest.mark.parametrize("name", TRANSLATED)
def test_client_leaving_mid_stream_closes_the_upstream_within_a_second(proxy, fake, name, no_traceback):
    surface = SURFACES[name]
    fake.script(MODEL, reply=" ".join(["tok"] * 400), chunk_delay=0.05)
    left = _hang_up_mid_stream(proxy, surface.path, surface.body)
    fake.wait_for(lambda: fake.streams and fake.streams[-1].closed_at is not None, timeout=5)
    upstream = fake.streams[-1]
    print(f"{name}: upstream closed {upstream.closed_at - left:.3f}s after the client left, "
          f"after {upstream.chunks_sent} of 401 chunks")
    assert upstream.aborted and not upstream.completed
    assert upstream.closed_at - left < 1.0
    no_traceback(proxy)


# Timeouts. service.read_timeout bounds the wait for an answer to start (a model loading may take
# minutes); service.stream_idle_timeout bounds the silence inside a stream that has started.
READ_TIMEOUT, IDLE_TIMEOUT = 10, 1


@pytest.fixture(scope="module")
def patient_server(fake_server, tmp_path_factory):
    config = base_config(fake_server.url, read_timeout=READ_TIMEOUT, stream_idle_timeout=IDLE_TIMEOUT)
    server = ProxyServer(config, tmp_path_factory.mktemp("patient"), workers=1).start()
    yield server
    server.stop()


@pytest.fixture
def patient_proxy(patient_server, no_traceback):
    no_traceback.mark(patient_server)
    return patient_server


@pytest.mark.parametrize("name", SURFACES)
def test_a_slow_first_byte_is_waited_for_up_to_read_timeout(patient_proxy, fake, name, no_traceback):
    """A model loading for longer than stream_idle_timeout is not cut: the wait is read_timeout's."""
    fake.script(MODEL, reply=REPLY, first_byte_delay=2 * IDLE_TIMEOUT)
    started = time.monotonic()
    outcome = stream(patient_proxy, SURFACES[name])
    assert outcome.error is None and outcome.finished
    assert outcome.text == REPLY
    assert time.monotonic() - started >= 2 * IDLE_TIMEOUT
    no_traceback(patient_proxy)


@pytest.mark.parametrize("name", ["native-chat", "openai-chat", "anthropic"])
def test_a_stream_longer_than_the_idle_timeout_but_never_silent_completes(patient_proxy, fake, name):
    """stream_idle_timeout bounds each silence, not the whole stream."""
    # The longest silence is one chunk_delay plus the stall: 0.7 of the idle timeout.
    fake.script(MODEL, reply=REPLY, chunk_delay=0.3 * IDLE_TIMEOUT, stall_after=3, stall_seconds=0.4 * IDLE_TIMEOUT)
    started = time.monotonic()
    outcome = stream(patient_proxy, SURFACES[name])
    assert time.monotonic() - started > 1.5 * IDLE_TIMEOUT
    assert outcome.error is None and outcome.finished and outcome.text == REPLY


@pytest.mark.parametrize("name", SURFACES)
def test_a_stream_that_stalls_is_cut_after_stream_idle_timeout(patient_proxy, fake, name, no_traceback):
    fake.script(MODEL, reply=REPLY, chunk_delay=0.05, stall_after=2, stall_seconds=3 * IDLE_TIMEOUT)
    outcome = stream(patient_proxy, SURFACES[name])
    assert outcome.text == "a b "
    assert outcome.error is not None and "stream_idle_timeout" in outcome.error
    assert not outcome.finished
    silence = outcome.arrivals[-1] - outcome.arrivals[-2]  # the last text chunk -> the error frame
    print(f"{name}: cut after {silence:.3f}s of silence")
    assert 0.9 * IDLE_TIMEOUT <= silence < 1.5 * IDLE_TIMEOUT
    fake.wait_for(lambda: fake.streams[-1].closed_at is not None, timeout=6 * IDLE_TIMEOUT)
    assert not fake.streams[-1].completed, "the stalled upstream was not closed"
    no_traceback(patient_proxy)


@pytest.mark.parametrize("name", SURFACES)
def test_a_client_leaving_mid_stream_is_logged_as_leaving_not_as_a_lost_upstream(proxy, fake, name, no_traceback):
    """Ollama is silent when the client hangs up: the proxy's watcher cuts the upstream, whose read then fails."""
    surface, request_id = SURFACES[name], f"leaves-{name}-{time.monotonic_ns()}"
    fake.script(MODEL, reply="tok tok tok tok tok", stall_after=3, stall_seconds=20)
    with post_json(proxy, surface.path, surface.body, timeout=10, request_id=request_id) as sock:
        received = b""
        while received.count(b"tok") < 3:
            piece = sock.recv(65536)
            assert piece, f"the proxy closed the stream early: {received[-500:]!r}"
            received += piece
        time.sleep(0.3)  # Ollama is silent now: no write tells the proxy the client left
    assert proxy.access_entry(request_id)["aborted"] is True
    logged = [line for line in (proxy.log_dir / "error.log").read_text().splitlines() if request_id in line]
    assert [line.split(" ", 3)[2] for line in logged] == ["INFO"], logged
    assert f"stream of POST {surface.path} ended: the client left (request {request_id})" in logged[0]
    no_traceback(proxy)
