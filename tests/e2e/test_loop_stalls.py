"""Nothing of a request's size runs on the event loop: a worker's streams go on while huge bodies are read.

One gunicorn worker (gevent, the arbiter too) streams an answer from a fake Ollama in a
process of its own, a word every 40 ms, each chunk stamped with the fake's clock. Meanwhile
45 MB requests arrive at that worker: an Anthropic count_tokens, an Anthropic message, six
native or OpenAI chats at once. What each chunk waited in the proxy (its arrival here less
its stamp) is the loop's gap: a chunk the fake sent while the loop was held waits for it.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from tests.e2e.conftest import GENERATE, auth, base_config
from tests.e2e.server import fake_ollamas_apart

# Its bound is a tenth of a second of the loop: a test beside it on the other core would stretch it.
pytestmark = pytest.mark.alone

BOUND = 0.1  # the longest a chunk may wait in the proxy while huge bodies are read beside it
CHUNK_DELAY = 0.04
# A stall of the proxy's comes every round; a loaded machine's (two cores, a benchmark beside) now and then:
# the least of the rounds' stalls is held to the bound, so the rounds stop at the first one within it.
ROUNDS = 3
MAX_BODY = 50 * 2**20  # the shipped limits.max_body_bytes
ANTHROPIC = {"x-api-key": GENERATE, "anthropic-version": "2023-06-01", "Content-Type": "application/json"}
NATIVE = {**auth(GENERATE), "Content-Type": "application/json"}


def _log(n: int = 0) -> str:
    """A whole log pasted into one message: 45 MB; ``n`` makes each one another prompt."""
    return f"{n} " + "log line " * 5_000_000


def _native(n: int) -> bytes:
    messages = [{"role": "user", "content": _log(n)}, {"role": "assistant", "content": "Read."},
                {"role": "user", "content": "What failed?"}]
    return json.dumps({"model": "llama3.2", "messages": messages, "stream": False}).encode()


def _openai(n: int) -> bytes:
    messages = [{"role": "user", "content": _log(n)}, {"role": "assistant", "content": "Read."},
                {"role": "user", "content": "What failed?"}]
    return json.dumps({"model": "llama3.2", "messages": messages}).encode()


def _anthropic(n: int) -> bytes:
    messages = [{"role": "user", "content": [{"type": "text", "text": _log(n)}]},
                {"role": "assistant", "content": "Read."}, {"role": "user", "content": "What failed?"}]
    return json.dumps({"model": "llama3.2", "max_tokens": 16, "messages": messages}).encode()


@pytest.fixture
def fakes(tmp_path):
    """Two fake Ollama servers of one slot each, in processes of their own: what one parses stalls nothing here."""
    with fake_ollamas_apart(2, CHUNK_DELAY) as urls:
        yield urls


@pytest.fixture(params=[False], ids=["chat logs off"])
def worker(request, start_proxy, fakes):
    """One worker, scheduling two servers: the stream holds one, the huge requests queue for the other. With
    chat logs (``request.param``), each chat's line (its request's ends, base64 elided, encoded, redacted,
    written) is made as its response closes, beside the stream."""
    config = base_config(fakes[0], scheduling=True, num_parallel=1, max_loaded_models=1)
    config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": fakes[1], "num_parallel": 1,
                           "max_loaded_models": 1}]
    config["limits"] = {"max_body_bytes": MAX_BODY}
    config["scheduling"] = {"max_wait": 120}
    config["chat_logs"] = {"enabled": request.param}
    return start_proxy(config, workers=1)


class Stream:
    """A long streamed answer, each chunk noted as (when it came, how long it waited from the fake's stamp)."""

    def __init__(self, url: str):
        self.url = url
        self.held: list[tuple[float, float]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> Stream:
        self.thread.start()
        deadline = time.time() + 30
        while len(self.held) < 5:
            assert time.time() < deadline, "the stream did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info) -> None:
        self.done.set()  # what it was for is measured: the client leaves, as people do
        self.thread.join(90)

    def _read(self) -> None:  # "You said: " and the question, a word every 40 ms: 40 s, unless left before
        body = {"model": "llama3.2", "messages": [{"role": "user", "content": " ".join(["word"] * 1000)}]}
        with requests.post(self.url + "/api/chat", json=body, headers=auth(GENERATE), stream=True, timeout=120) as r:
            for line in r.iter_lines():
                if self.done.is_set():
                    return
                if line.strip():
                    stamped = datetime.fromisoformat(json.loads(line)["created_at"]).timestamp()
                    self.held.append((time.time(), time.time() - stamped))

    def stall(self, since: float, until: float) -> float:
        beside = [late for came, late in self.held if since <= came < until]
        assert len(beside) > 5, "the stream did not run beside the huge requests"
        return max(beside)


def _stalls(url: str, path: str, rounds: list[list[bytes]], headers: dict, window: float) -> list[float]:
    """Send each round's bodies at once beside a stream, until a round's longest wait of a chunk is within
    the bound; return each sent round's longest wait."""
    stalls, answers = [], []
    with Stream(url) as stream, ThreadPoolExecutor(sum(map(len, rounds))) as pool:
        for bodies in rounds:
            sent = time.time()
            answers += [pool.submit(requests.post, url + path, data=body, headers=headers, timeout=300)
                        for body in bodies]
            time.sleep(window)
            stalls.append(stream.stall(sent, sent + window))
            if stalls[-1] < BOUND:
                break
        statuses = [answer.result().status_code for answer in answers]
    assert statuses == [200] * len(answers), answers[0].result().text[:300]
    return stalls


def _assert_no_stall(stalls: list[float]) -> list[float]:
    assert min(stalls) < BOUND, (f"chunks waited {', '.join(f'{s:.3f}' for s in stalls)} s in the proxy while huge "
                                 "requests were read beside them")
    return stalls


# Each body is fresh: the estimate remembers a long text's figure for the next turn of its conversation.
def test_anthropic_count_tokens_of_45_mb_stalls_no_stream(worker):
    rounds = [[_anthropic(n)] for n in range(ROUNDS)]
    _assert_no_stall(_stalls(worker.url, "/v1/messages/count_tokens", rounds, ANTHROPIC, window=3.0))


@pytest.mark.parametrize("worker", [True], ids=["chat logs on"], indirect=True)
def test_an_anthropic_message_of_45_mb_stalls_no_stream(worker):
    rounds = [[_anthropic(n)] for n in range(ROUNDS)]
    sent = len(_assert_no_stall(_stalls(worker.url, "/v1/messages", rounds, ANTHROPIC, window=3.0)))
    logged = _logged_huge(worker, sent)  # each kept as its ends: the conversation's last turn is there
    assert len(logged) == sent and all('"What failed?"}]' in entry["request"][-60:] for entry in logged)


@pytest.mark.parametrize("path, make", [("/api/chat", _native), ("/v1/chat/completions", _openai)],
                         ids=["native", "openai"])
def test_six_prompts_of_45_mb_at_once_stall_no_stream(worker, path, make):
    rounds = [[make(r * 6 + n) for n in range(6)] for r in range(ROUNDS)]
    _assert_no_stall(_stalls(worker.url, path, rounds, NATIVE, window=5.0))


def _logged_huge(worker, count: int) -> list[dict]:
    """The chat log's lines of huge requests (each kept as its ends), once ``count`` are written (or 30 s)."""
    deadline, huge = time.time() + 30, []
    while len(huge) < count and time.time() < deadline:  # each written once its response closed, on a thread
        time.sleep(0.2)
        logged = [json.loads(line) for line in (worker.log_dir / "chat.jsonl").read_text().splitlines()]
        huge = [entry for entry in logged if entry.get("request_bytes", 0) > 45_000_000]
    return huge

