"""1,000 concurrent streams through one proxy instance: none lost, none corrupted, none mixed up.

The clients are plain threads with http.client (the test process is not monkey-patched): 1,000
mostly idle sockets are cheap for threads. Every stream asks for its own text, so a chunk that
went to the wrong client, or got lost or garbled on the way, shows in the text that client reads.
"""

from __future__ import annotations

import http.client
import json
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.conftest import GENERATE, base_config

STREAMS = 1000
WORDS = 8  # the fake answers "You said: <prompt>": 2 + WORDS chunks of content, then its done line
CHUNK_DELAY = 0.2
BUDGET = 90.0  # seconds for the whole run


def raise_fd_limit(wanted: int) -> None:
    """Let this process (and the proxy it starts) hold the sockets of every stream at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard),
                                                    hard))


def prompt_of(n: int) -> str:
    return " ".join([f"stream{n}"] + [f"w{n}.{k}" for k in range(WORDS - 1)])


def read_ndjson(body: bytes) -> tuple[str, bool]:
    """Return the text of a native chat stream and whether it ended with a done line."""
    lines = [json.loads(line) for line in body.split(b"\n") if line]
    assert all("error" not in line for line in lines), lines[-1]
    assert len(lines) == 2 + WORDS + 1
    return "".join(line["message"]["content"] for line in lines), lines[-1].get("done") is True


def read_sse(body: bytes) -> tuple[str, bool]:
    """Return the text of an OpenAI chat stream and whether it ended with stop and [DONE]."""
    datas = [line[6:] for line in body.decode().split("\n") if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    frames = [json.loads(data) for data in datas[:-1]]
    assert all("error" not in frame for frame in frames), frames[-1]
    assert len({frame["id"] for frame in frames}) == 1
    text = "".join(frame["choices"][0]["delta"].get("content") or "" for frame in frames)
    return text, frames[-1]["choices"][0]["finish_reason"] == "stop"


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    """Return how many of the (start, end) spans were open at the same moment, at most."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_1000_concurrent_streams_through_one_instance(start_proxy, fake):
    raise_fd_limit(4 * STREAMS + 512)
    # Every upstream stream sends its first chunk, then waits until all of them are open at once:
    # the proxy must hold 1,000 streams together, however slowly this machine starts them.
    fake.script("llama3.2:latest", chunk_delay=CHUNK_DELAY, hold_until_open=STREAMS, hold_seconds=BUDGET / 2)
    proxy = start_proxy(base_config(fake.url, read_timeout=BUDGET), workers=2)
    all_connected = threading.Barrier(STREAMS)

    def one_stream(n: int) -> tuple[str, str, bool, float]:
        """Connect, wait until every client has, then ask for one stream and read it to the end."""
        native = n % 2 == 0  # half native NDJSON, half OpenAI SSE
        path = "/api/chat" if native else "/v1/chat/completions"
        body = json.dumps({"model": "llama3.2", "messages": [{"role": "user", "content": prompt_of(n)}],
                           **({} if native else {"stream": True})})
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=BUDGET)
        try:
            connection.connect()
            all_connected.wait(timeout=BUDGET)
            connection.request("POST", path, body, {"Authorization": f"Bearer {GENERATE}",
                                                    "Content-Type": "application/json"})
            answer = connection.getresponse()
            headers_at = time.monotonic()
            assert answer.status == 200, answer.read()[:300]
            text, ended = (read_ndjson if native else read_sse)(answer.read())  # IncompleteRead if cut
            return path, text, ended, headers_at
        except BaseException:
            all_connected.abort()  # let the others fail fast instead of waiting at the barrier
            raise
        finally:
            connection.close()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=STREAMS) as pool:
        results = list(pool.map(one_stream, range(STREAMS)))
    elapsed = time.monotonic() - started

    spans = [(s.started, s.closed_at) for s in fake.streams if s.closed_at is not None]
    peak = peak_overlap(spans)
    last_start = max(at for *_, at in results) - started
    print(f"{STREAMS} streams of {2 + WORDS} chunks {CHUNK_DELAY}s apart in {elapsed:.1f}s; the last one started "
          f"after {last_start:.1f}s; at most {peak} upstream streams open at once")
    for n, (path, text, ended, _) in enumerate(results):
        assert text == f"You said: {prompt_of(n)}", f"stream {n} ({path}) corrupted: {text!r}"
        assert ended, f"stream {n} ({path}) did not end properly"
    assert sum(1 for s in fake.streams if s.completed and not s.aborted) == STREAMS
    assert peak == STREAMS, "the proxy did not hold every stream open at once"
    assert elapsed < BUDGET

    def streamed() -> list[dict]:
        entries = [json.loads(line) for line in proxy.access_lines()]
        return [e for e in entries if e["path"] in ("/api/chat", "/v1/chat/completions")]
    deadline = time.monotonic() + 10
    while len(streamed()) < STREAMS and time.monotonic() < deadline:
        time.sleep(0.1)
    entries = streamed()
    assert len(entries) == STREAMS
    assert all(e["status"] == 200 and e["aborted"] is False for e in entries)
    assert "Traceback" not in proxy.stderr()
