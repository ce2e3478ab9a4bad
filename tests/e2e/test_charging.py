"""Every GPU-second and token is charged, however its request ended; pulls are no tokens (2 workers, fake Ollama).

What ran is measured apart from the proxy: the fake runs in this process, on the same clock as the
clients, so a request ran from the moment the fake got it to the moment its client hung up (or the
fake finished it), and an answer that finished ran its own ``total_duration``.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.command import cli, create_key
from tests.e2e.conftest import base_config
from tests.e2e.server import wait_for

WORDS = 8
DELAY = 0.25  # seconds between the fake's chunks: an answer runs about WORDS * DELAY
REPLY = " ".join(f"tok{i}" for i in range(WORDS))
LAST = f"tok{WORDS - 1}".encode()
SLOTS = {"scheduling": True, "num_parallel": 2, "max_loaded_models": 2}
PROMPT = "please count a few words for me"


@pytest.fixture
def gpu():
    """A fake Ollama in slot mode, answering a token every DELAY seconds."""
    from tests.fakes.ollama import FakeOllama

    fake = FakeOllama(num_parallel=2, max_loaded_models=2).start()
    fake.script("llama3.2", reply=REPLY, chunk_delay=DELAY)
    yield fake
    fake.stop()


def _key(proxy, name: str, *args: str) -> str:
    secret = create_key(proxy, "--name", name, *args)
    for unit, amount in (("--gpu-seconds", "1000"), ("--tokens", "1000000")):
        made = cli(proxy, "budgets", "set", "--key", name, "--period", "day", unit, amount)
        assert made.returncode == 0, made.stderr
    return secret


def _headers(secret: str, request_id: str) -> dict:
    return {"Authorization": f"Bearer {secret}", "X-Request-Id": request_id}


def _rows(proxy, key: str) -> dict[str, dict]:
    done = cli(proxy, "usage", "--key", key, "--format", "json")
    assert done.returncode == 0, done.stderr
    return {row["request_id"]: row for row in json.loads(done.stdout)}


def _rows_with(proxy, key: str, request_ids: list[str]) -> dict[str, dict]:
    """The usage rows of ``key``'s ``request_ids``, once each is written (as its response closes): one command a
    look for all of them."""
    seen: dict[str, dict] = {}

    def landed() -> bool:
        seen.update(_rows(proxy, key))
        return all(request_id in seen for request_id in request_ids)
    assert wait_for(landed, timeout=10), [request_id for request_id in request_ids if request_id not in seen]
    return {request_id: seen[request_id] for request_id in request_ids}


def _row(proxy, key: str, request_id: str) -> dict:
    return _rows_with(proxy, key, [request_id])[request_id]


def _spent(proxy, key: str) -> dict[str, float]:
    listed = json.loads(cli(proxy, "budgets", "list", "--format", "json").stdout)
    return {budget["unit"]: budget["spent"] for budget in listed if budget["holder"] == key}


def _spent_once(proxy, key: str, landed) -> dict[str, float]:
    """What ``key`` spent, once ``landed`` holds of it: a worker's lease adds its requests' charges as it ends."""
    wait_for(lambda: landed(_spent(proxy, key)), timeout=5)
    return _spent(proxy, key)


def _ran_until(fake, left: float) -> float:
    """Seconds the fake's last request held its slot, from its arrival to its end: a request whose client hung up
    (at ``left``) runs until Ollama notices, at its next token."""
    assert wait_for(lambda: fake.scheduler.records()[-1].state != "pending" and (
        fake.scheduler.records()[-1].finished_at or fake.scheduler.records()[-1].left_at), timeout=10)
    record = fake.scheduler.records()[-1]
    return (record.finished_at or record.left_at) - record.queued_at


def _cut(url: str, headers: dict, body: dict) -> float:
    """Stream ``body``, hang up as soon as the last word came (before the answer's end); return when it hung up."""
    with requests.post(url, headers=headers, json=body, stream=True, timeout=30) as answer:
        assert answer.status_code == 200, answer.text
        seen = b""
        for piece in answer.iter_content(None):
            seen += piece
            if LAST in seen:
                break
        assert b'"done":true' not in seen and b"message_stop" not in seen and b"[DONE]" not in seen
    return time.monotonic()  # closed unread: the connection is closed, as a client that leaves closes it


CUTS = {
    "native": ("/api/chat", {"model": "llama3.2", "messages": [{"role": "user", "content": PROMPT}]}),
    "openai": ("/v1/chat/completions", {"model": "llama3.2", "stream": True,
                                        "messages": [{"role": "user", "content": PROMPT}]}),
    "anthropic": ("/v1/messages", {"model": "llama3.2", "max_tokens": 100, "stream": True,
                                   "messages": [{"role": "user", "content": PROMPT}]}),
}


@pytest.fixture
def proxy(start_proxy, gpu):
    return start_proxy(base_config(gpu.url, **SLOTS), workers=2)


def test_streams_cut_before_their_end_are_charged_their_gpu_time_and_prompt(proxy, gpu):
    secret = _key(proxy, "cutter")
    ran = {}
    for surface, (path, body) in CUTS.items():
        left = _cut(proxy.url + path, _headers(secret, f"cut-{surface}"), body)
        ran[surface] = _ran_until(gpu, left)
    assert not any(stream.completed for stream in gpu.streams)
    for surface, seconds in ran.items():
        row = _row(proxy, "cutter", f"cut-{surface}")
        assert row["aborted"] and row["measured"], row
        assert seconds * 0.95 - 0.05 < row["gpu_seconds"] < seconds * 1.05 + 0.05, (surface, row, seconds)
        assert row["prompt_tokens"] and row["prompt_tokens"] >= len(PROMPT.split()), row
        assert row["completion_tokens"] >= WORDS - 1, row
    spent = _spent_once(proxy, "cutter", lambda spent: spent["gpu_seconds"] >= sum(ran.values()) * 0.95 - 0.1)
    assert abs(spent["gpu_seconds"] - sum(ran.values())) < 0.05 * sum(ran.values()) + 0.1, (spent, ran)
    assert spent["tokens"] >= 3 * (len(PROMPT.split()) + WORDS - 1), spent


def test_a_whole_answer_whose_client_left_is_charged(proxy, gpu):
    secret = _key(proxy, "leaver")
    body = {"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": PROMPT}]}
    with pytest.raises(requests.ReadTimeout):
        requests.post(proxy.url + "/api/chat", headers=_headers(secret, "left-whole"), json=body, timeout=(5, 1.0))
    ran = _ran_until(gpu, time.monotonic())
    row = _row(proxy, "leaver", "left-whole")
    assert row["status"] == 499 and row["aborted"] and row["measured"], row
    assert ran * 0.9 - 0.05 < row["gpu_seconds"] < ran * 1.1 + 0.1, (row, ran)  # test_cut_charging: within 2 %
    assert row["prompt_tokens"] >= len(PROMPT.split()), row
    assert wait_for(lambda: _spent(proxy, "leaver").get("gpu_seconds", 0) > 0.5, timeout=5), _spent(proxy, "leaver")


def test_legacy_embeddings_and_transcriptions_are_charged(proxy, gpu):
    secret = _key(proxy, "listener")
    answer = requests.post(proxy.url + "/api/embeddings", headers=_headers(secret, "legacy-embedding"),
                           json={"model": "all-minilm", "prompt": "one two three four"}, timeout=30)
    assert answer.status_code == 200, answer.text
    answer = requests.post(proxy.url + "/v1/audio/transcriptions", headers=_headers(secret, "transcription"),
                           data={"model": "llama3.2"}, files={"file": ("hello.wav", bytes(range(256)) * 16)},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    ran = _ran_until(gpu, time.monotonic())
    rows = _rows_with(proxy, "listener", ["legacy-embedding", "transcription"])
    embedding, transcription = rows["legacy-embedding"], rows["transcription"]
    assert embedding["gpu_seconds"] > 0 and embedding["prompt_tokens"] >= 4 and embedding["measured"], embedding
    assert ran * 0.9 < transcription["gpu_seconds"] < ran * 1.1 + 0.1 and transcription["measured"], transcription
    assert transcription["completion_tokens"] >= len(answer.json()["text"].split()), transcription
    spent = _spent_once(proxy, "listener", lambda spent: spent["gpu_seconds"] >= ran * 0.9 and spent["tokens"] >= 4)
    assert spent["gpu_seconds"] >= ran * 0.9 and spent["tokens"] >= 4, spent


def test_model_pulls_are_no_tokens(proxy, gpu):
    secret = create_key(proxy, "--name", "puller", "--scope", "manage", "--tpm", "20")
    made = cli(proxy, "budgets", "set", "--key", "puller", "--period", "day", "--tokens", "30")
    assert made.returncode == 0, made.stderr
    for n in range(4):  # each pull streams more progress lines than the limits would allow, were they tokens
        with requests.post(proxy.url + "/api/pull", headers=_headers(secret, f"pull-{n}"),
                           json={"model": f"tinyllama:{n}"}, stream=True, timeout=30) as answer:
            assert answer.status_code == 200, answer.text
            lines = answer.content.splitlines()
        assert len(lines) > 2 and b"success" in lines[-1]
    rows = list(_rows_with(proxy, "puller", [f"pull-{n}" for n in range(4)]).values())
    assert all(not row["prompt_tokens"] and not row["completion_tokens"] for row in rows), rows
    assert _spent(proxy, "puller").get("tokens", 0) == 0


def test_the_spend_is_what_ran_with_cut_streams_leaving_clients_and_embeddings(proxy, gpu):
    """The exactness of test_budgets.py, with every way a request ends: recorded spend within 1 % of what ran.

    Cut streams on every surface, clients that left a whole answer, answers that waited for a slot (charged what
    ran, not their wait), embeddings old and new.
    """
    secret = _key(proxy, "mixed")
    ran = []
    n = 0

    def request_id() -> str:
        nonlocal n
        n += 1
        return f"mixed-{n}"
    for round_ in range(2):
        for path, body in CUTS.values():
            ran.append(_ran_until(gpu, _cut(proxy.url + path, _headers(secret, request_id()), body)))
        whole = {"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": PROMPT}]}
        with pytest.raises(requests.ReadTimeout):
            requests.post(proxy.url + "/api/chat", headers=_headers(secret, request_id()), json=whole,
                          timeout=(5, 0.6 + 0.8 * round_))
        ran.append(_ran_until(gpu, time.monotonic()))
        answer = requests.post(proxy.url + "/api/chat", headers=_headers(secret, request_id()), json=whole, timeout=30)
        ran.append(answer.json()["total_duration"] / 1e9)
        answer = requests.post(proxy.url + "/api/embed", headers=_headers(secret, request_id()),
                               json={"model": "all-minilm", "input": ["one two", "three"]}, timeout=30)
        ran.append(answer.json()["total_duration"] / 1e9)
        asked = time.monotonic()
        answer = requests.post(proxy.url + "/api/embeddings", headers=_headers(secret, request_id()),
                               json={"model": "all-minilm", "prompt": "one two three"}, timeout=30)
        assert answer.status_code == 200, answer.text
        ran.append(time.monotonic() - asked)  # the fake answers at once: at most the round trip
        ids = [request_id() for _ in range(4)]  # four at once on two slots: two wait, and are charged what ran
        with ThreadPoolExecutor(4) as pool:
            queued = list(pool.map(lambda i, body=whole: requests.post(proxy.url + "/api/chat", json=body,
                                                                       headers=_headers(secret, i), timeout=30), ids))
        waited = [float(re.search(r"queue;dur=([\d.]+)", a.headers["Server-Timing"]).group(1)) for a in queued]
        assert sum(w > 1000 for w in waited) >= 2, waited
        ran.extend(a.json()["total_duration"] / 1e9 for a in queued)
    ids = [f"mixed-{i}" for i in range(1, n + 1)]
    rows = list(_rows_with(proxy, "mixed", ids).values())
    truth = sum(ran)
    assert wait_for(lambda: abs(_spent(proxy, "mixed")["gpu_seconds"] - truth) <= 0.01 * truth, timeout=5), (
        _spent(proxy, "mixed"), truth, [row["gpu_seconds"] for row in rows], ran)
    assert abs(sum(row["gpu_seconds"] for row in rows) - truth) <= 0.01 * truth
    tokens = sum((row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0) for row in rows)
    assert _spent(proxy, "mixed")["tokens"] == tokens
    assert all(row["prompt_tokens"] for row in rows), rows


def test_a_stream_left_after_its_grant_and_before_ollamas_first_byte_is_charged(start_proxy, gpu):
    """Anthropic's stream pings while the model loads: its client leaves then, and the slot's time is still charged."""
    proxy = start_proxy(base_config(gpu.url, stream_ping_interval=0.3, **SLOTS), workers=2)
    secret = _key(proxy, "pinged")
    gpu.script("llama3.2", reply=REPLY, chunk_delay=DELAY, first_byte_delay=3.0, cancels_while_loading=True)
    _, body = CUTS["anthropic"]
    with requests.post(proxy.url + "/v1/messages", headers=_headers(secret, "pinged"), json=body, stream=True,
                       timeout=30) as answer:
        assert answer.status_code == 200
        seen, pieces = b"", answer.iter_content(None)  # kept: a generator dropped would close the connection
        for piece in pieces:
            seen += piece
            if b"event: ping" in seen:
                break
        time.sleep(1.0)
    ran = time.monotonic() - gpu.calls("/api/chat")[-1].at
    row = _row(proxy, "pinged", "pinged")
    assert row["measured"] and ran - 0.1 < row["gpu_seconds"] < ran + 0.2, (row, ran)
