"""A request waiting for its slot: its stream is kept alive, and a client that leaves cancels it.

One fake Ollama runs one request at a time (one slot, one loaded model). A stream of another model
holds the slot until a test lets go of it (the fake stalls after its first chunk until its client
leaves), so the request under test waits in the proxy for as long as the test wants, and the
official clients of each protocol read what the proxy sent meanwhile.
"""

from __future__ import annotations

import importlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import anthropic
import httpx
import ollama
import openai
import pytest
import requests

from tests.e2e.conftest import ALICE, GENERATE, SCRAPE, auth, base_config
from tests.e2e.nginx import Nginx
from tests.e2e.server import ProxyServer, wait_for
from tests.fakes.ollama import FakeOllama
from tests.fakes.ollama_runner import DROPPED

SLOT = {"num_parallel": 1, "max_loaded_models": 1}
KEEPALIVE = 0.3  # scheduling.keepalive_interval of the proxies here
HELD_MODEL = "qwen3:8b"
MODEL = "llama3.2"
HELLO = [{"role": "user", "content": "hello"}]
ANSWER = "You said: hello"
# The HTTP library each SDK's clients are built on: httpx2 for recent openai and anthropic, httpx before.
SDK_HTTP = {sdk: importlib.import_module(sdk.DefaultHttpxClient.__mro__[1].__module__) for sdk in (openai, anthropic)}


@pytest.fixture(scope="module")
def gpu():
    server = FakeOllama(**SLOT).start()
    yield server
    server.stop()


def _config(gpu: FakeOllama, max_wait: float) -> dict:
    config = base_config(gpu.url, scheduling=True, **SLOT)
    config["scheduling"] = {"keepalive_interval": KEEPALIVE, "max_wait": max_wait}
    return config


@pytest.fixture(scope="module")
def proxy(gpu, tmp_path_factory):
    server = ProxyServer(_config(gpu, max_wait=60), tmp_path_factory.mktemp("waiting"), workers=2).start()
    yield server
    server.stop()


@pytest.fixture
def fake(gpu, proxy):
    gpu.reset()
    gpu.script(HELD_MODEL, stall_after=1, stall_seconds=60)
    assert wait_for(lambda: _waiting(proxy) == 0)
    return gpu


def _waiting(proxy) -> float:
    text = requests.get(proxy.url + "/metrics", headers=auth(SCRAPE), timeout=10).text
    lines = [line for line in text.splitlines() if line.startswith("ollama_proxy_scheduler_waiting ")]
    return float(lines[0].split()[1]) if lines else 0.0


@contextmanager
def slot_held(url: str) -> Iterator[None]:
    """Hold the server's one slot with a stream that stalls until this block ends (its client leaves)."""
    body = {"model": HELD_MODEL, "messages": [{"role": "user", "content": "hold"}]}
    with requests.post(url + "/api/chat", headers=auth(ALICE), json=body, stream=True, timeout=60) as holder:
        assert holder.status_code == 200
        lines = holder.iter_lines()  # kept: closing it would close the connection
        next(lines)  # its first chunk came: it runs
        yield


class Recording:
    """Every byte of the answers' bodies, as it arrives, through the transport of a client's HTTP library."""

    def __init__(self) -> None:
        self.received = bytearray()
        self._changed = threading.Condition()

    def keep(self, piece: bytes) -> None:
        with self._changed:
            self.received += piece
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = 20.0) -> bool:
        """Wait until ``predicate`` holds for the body so far."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(bytes(self.received)), timeout)

    def transport(self, http):
        """Return a transport of ``http`` (httpx, or an SDK's own) that records what it receives."""
        recording = self

        class Tee(http.SyncByteStream):
            def __init__(self, stream) -> None:
                self._stream = stream

            def __iter__(self) -> Iterator[bytes]:
                for piece in self._stream:
                    recording.keep(piece)
                    yield piece

            def close(self) -> None:
                self._stream.close()

        class Recorded(http.HTTPTransport):
            def handle_request(self, request):
                response = super().handle_request(request)
                return http.Response(response.status_code, headers=response.headers, stream=Tee(response.stream),
                                     extensions=response.extensions)

        return Recorded()


def _client_of(sdk, recording: Recording):
    http = SDK_HTTP[sdk]
    return http.Client(transport=recording.transport(http))


def _native(url: str, recording: Recording) -> str:
    with ollama.Client(host=url, headers=auth(), transport=recording.transport(httpx)) as client:
        return "".join(part.message.content for part in client.chat(model=MODEL, messages=HELLO, stream=True))


def _openai_chat(url: str, recording: Recording) -> str:
    with openai.OpenAI(base_url=url + "/v1", api_key=GENERATE, max_retries=0,
                       http_client=_client_of(openai, recording)) as client:
        stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def _responses(url: str, recording: Recording) -> str:
    with openai.OpenAI(base_url=url + "/v1", api_key=GENERATE, max_retries=0,
                       http_client=_client_of(openai, recording)) as client:
        events = list(client.responses.create(model=MODEL, input="hello", stream=True))
        assert events[-1].type == "response.completed"
        return events[-1].response.output_text


def _anthropic(url: str, recording: Recording) -> str:
    with anthropic.Anthropic(base_url=url, api_key=GENERATE, max_retries=0,
                             http_client=_client_of(anthropic, recording)) as client:
        with client.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
            message = stream.get_final_message()
    return message.content[0].text


def _spaces(body: bytes) -> int:
    return len(body) - len(body.lstrip(b" "))


def _comments(body: bytes) -> int:
    count = 0
    while body.startswith(SSE_COMMENT, count * len(SSE_COMMENT)):
        count += 1
    return count


def _pings(body: bytes) -> int:
    return body.count(PING) if body.startswith(b"event: message_start\n") else 0


SSE_COMMENT = b": keepalive\n\n"
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
# Each surface's official client, and how many keepalives its stream began with, the answer not yet begun.
SURFACES = {
    "native": (_native, _spaces),
    "openai chat": (_openai_chat, _comments),
    "responses": (_responses, _comments),
    "anthropic": (_anthropic, _pings),
}


@pytest.mark.parametrize("surface", SURFACES)
def test_a_stream_waiting_for_its_slot_gets_keepalives_then_its_whole_answer(proxy, fake, surface):
    ask, keepalives = SURFACES[surface]
    recording = Recording()
    with ThreadPoolExecutor(1) as pool:
        with slot_held(proxy.url):
            answer = pool.submit(ask, proxy.url, recording)
            assert recording.wait_for(lambda body: keepalives(body) >= 2), bytes(recording.received)
        assert answer.result(timeout=30) == ANSWER


def test_a_stream_that_starts_while_it_waits_gives_the_wait_so_far_as_queue_time(proxy, fake):
    body = {"model": MODEL, "messages": HELLO}
    with slot_held(proxy.url):
        with requests.post(proxy.url + "/api/chat", headers=auth(), json=body, stream=True, timeout=30) as answer:
            timing = {name.strip(): float(value) for name, value in
                      (part.split(";dur=") for part in answer.headers["Server-Timing"].split(","))}
    # Its headers went with the first keepalive, KEEPALIVE after it was sent on: that wait is queue time.
    wait = KEEPALIVE * 1000
    assert timing["queue"] >= wait / 2 and timing["upstream"] < wait / 2 and timing["proxy"] < wait / 2


def test_keepalives_pass_through_nginx(proxy, fake, test_services, tmp_path):
    front = Nginx(proxy.port, tmp_path / "nginx").start()
    try:
        recording = Recording()
        with ThreadPoolExecutor(1) as pool:
            with slot_held(proxy.url):
                answer = pool.submit(_native, front.url, recording)
                assert recording.wait_for(lambda body: _spaces(body) >= 2), front.logs()  # unbuffered
            assert answer.result(timeout=30) == ANSWER
    finally:
        front.stop()


@pytest.fixture
def impatient(gpu, fake, start_proxy):
    """A proxy whose requests wait one second at most."""
    return start_proxy(_config(gpu, max_wait=1), workers=1)


# Each surface's official client, and the error it raises on an error the stream ends with.
ERRORS = {"native": ollama.ResponseError, "openai chat": openai.APIError, "anthropic": anthropic.APIStatusError}


@pytest.mark.parametrize("surface", ERRORS)
def test_a_waiting_stream_that_times_out_ends_with_the_protocols_error(impatient, surface):
    ask, keepalives = SURFACES[surface]
    recording = Recording()
    with slot_held(impatient.url):
        with pytest.raises(ERRORS[surface]) as caught:
            ask(impatient.url, recording)
    assert keepalives(bytes(recording.received)) >= 1  # the stream had begun: the error came in it
    assert "no slot came free" in str(caught.value) and "scheduling.max_wait" in str(caught.value)


def _send_and_leave_later(proxy: ProxyServer, body: dict, path: str = "/api/chat") -> socket.socket:
    data = json.dumps(body).encode()
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    client.sendall(f"POST {path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n".encode()
                   + f"Authorization: Bearer {GENERATE}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    return client


def _sent_to_the_gpu(fake: FakeOllama) -> list:
    return [call for call in fake.calls("/api/chat") if call.json["model"] == MODEL]


def _state(fake: FakeOllama) -> str | None:
    records = fake.scheduler.records(MODEL + ":latest")
    return records[-1].state if records else None


def test_a_client_that_leaves_while_its_granted_stream_loads_cancels_it(proxy, fake):
    fake.script(MODEL, load_seconds=60)
    with slot_held(proxy.url):
        client = _send_and_leave_later(proxy, {"model": MODEL, "messages": HELLO})
        assert wait_for(lambda: _waiting(proxy) == 1)
    assert wait_for(lambda: _sent_to_the_gpu(fake))  # granted and sent: the model loads for a minute
    client.close()
    assert wait_for(lambda: _state(fake) == DROPPED), _state(fake)  # Ollama saw its connection close


STREAMED = {
    "native": ("/api/chat", {"model": MODEL, "messages": HELLO}),
    "openai": ("/v1/chat/completions", {"model": MODEL, "messages": HELLO, "stream": True}),
    "anthropic": ("/v1/messages", {"model": MODEL, "messages": HELLO, "max_tokens": 50, "stream": True}),
    "responses": ("/v1/responses", {"model": MODEL, "input": "hello", "stream": True}),
}


@pytest.mark.parametrize("surface", STREAMED)
def test_a_client_that_leaves_while_its_stream_granted_at_once_loads_cancels_it(proxy, fake, surface):
    fake.script(MODEL, load_seconds=60)
    path, body = STREAMED[surface]
    client = _send_and_leave_later(proxy, body, path)
    assert wait_for(lambda: _sent_to_the_gpu(fake))  # granted at once and sent: the model loads for a minute
    assert _state(fake) != DROPPED
    client.close()
    assert wait_for(lambda: _state(fake) == DROPPED), _state(fake)  # Ollama saw its connection close


def test_a_client_that_leaves_before_its_whole_answer_cancels_it(proxy, fake):
    fake.script(MODEL, load_seconds=60)
    client = _send_and_leave_later(proxy, {"model": MODEL, "messages": HELLO, "stream": False})
    assert wait_for(lambda: _sent_to_the_gpu(fake))  # granted at once and sent: the model loads for a minute
    client.close()
    assert wait_for(lambda: _state(fake) == DROPPED), _state(fake)
