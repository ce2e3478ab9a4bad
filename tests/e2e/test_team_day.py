"""A team's afternoon: two GPU boxes, two workers behind nginx, everyone at once, and the policy holds.

Two people chat (native, streamed), an agent streams Anthropic turns with tools through the official
SDK, a batch key keeps ten generations queued, a client leaves each OpenAI stream after its first
chunk, and meanwhile a key limited to ``llama3*`` tries every way around its list. Afterwards:
every request ended, the people went ahead of the batch, no GPU time went on after a client left, no
slot is held, and nothing the limited key was refused reached a GPU box.
"""

from __future__ import annotations

import json
import re
import threading
import time

import anthropic
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.command import create_key
from tests.e2e.conftest import SCRAPE, auth, base_config
from tests.e2e.nginx import Nginx
from tests.e2e.server import ProxyServer, start_server, wait_for
from tests.fakes.ollama import FakeOllama

SLOTS = {"num_parallel": 2, "max_loaded_models": 2}
CHUNK = 0.05  # seconds between the fakes' chunks
LOAD_SECONDS = 12  # how long everyone works at once
BATCH_CLIENTS = 10
FORBIDDEN = {"qwen3:8b", "qwen3", "all-minilm", "all-minilm:latest"}
ASK = [{"role": "user", "content": "x"}]

# What the limited key tries while the others work: (method, path, body); each must be refused.
REACHES = [
    ("POST", "/api/chat", {"model": "qwen3:8b", "messages": ASK, "stream": False}),
    ("POST", "/api/chat", {"model": "QWEN3:8B", "messages": ASK, "stream": False}),
    ("POST", "/api/chat", {"model": "qwen3:8b ", "messages": ASK, "stream": False}),
    ("POST", "/api/chat", {"model": "llama3.2", "MODEL": "qwen3:8b", "messages": ASK, "stream": False}),
    ("POST", "/api/chat", {"Model": "qwen3:8b", "messages": ASK, "stream": False}),
    ("POST", "/api/generate", {"model": "qwen3:8b", "prompt": "x", "stream": False}),
    ("POST", "/api/show", {"model": "qwen3:8b"}),
    ("POST", "/api/show", {"name": "qwen3:8b"}),
    ("POST", "/api/embed", {"model": "all-minilm", "input": "x"}),
    ("POST", "/api/embeddings", {"model": "all-minilm", "prompt": "x"}),
    ("POST", "/v1/embeddings", {"model": "all-minilm", "input": "x"}),
    ("POST", "/v1/chat/completions", {"model": "qwen3:8b", "messages": ASK}),
    ("POST", "/v1/completions", {"model": "qwen3:8b", "prompt": "x"}),
    ("POST", "/v1/responses", {"model": "qwen3:8b", "input": "x"}),
    ("POST", "/v1/messages", {"model": "qwen3:8b", "max_tokens": 10, "messages": ASK}),
    ("POST", "/api/copy", {"source": "qwen3:8b", "destination": "llama3-mine"}),
    ("POST", "/api/create", {"model": "llama3-mine", "from": "qwen3:8b"}),
    ("POST", "/api/pull", {"model": "llama3-evil"}),
    ("DELETE", "/api/delete", {"model": "llama3.2"}),
]
# The same field twice: Python's json and Go's both keep the last, so the check must see what Ollama would.
TWICE = b'{"model":"llama3.2","messages":[{"role":"user","content":"x"}],"stream":false,"model":"qwen3:8b"}'


@pytest.fixture(scope="module")
def boxes():
    servers = [FakeOllama(**SLOTS).start() for _ in range(2)]
    for fake in servers:
        fake.script("llama3.2", chunk_delay=CHUNK)
        fake.script("llava", chunk_delay=CHUNK, reply="a long answer nobody reads to the end " * 20)
    yield servers
    for fake in servers:
        fake.stop()


@pytest.fixture(scope="module")
def front(boxes, tmp_path_factory, test_services):
    box1, box2 = boxes
    config = base_config(box1.url, scheduling=True, **SLOTS)
    config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": box2.url, **SLOTS}]
    config["routing"] = {"refresh_interval": 0.5}
    proxy = start_server(ProxyServer(config, tmp_path_factory.mktemp("team-proxy"), workers=2))
    nginx = Nginx(proxy.port, tmp_path_factory.mktemp("team-nginx"))
    try:
        nginx.start()
        assert wait_for(lambda: requests.get(nginx.url + "/health", timeout=5).status_code == 200), nginx.logs()
        yield proxy, nginx
    finally:
        nginx.stop()
        proxy.stop()


def _queued(answer: requests.Response) -> float:
    timing = dict(part.strip().split(";dur=") for part in answer.headers["Server-Timing"].split(","))
    return float(timing["queue"]) / 1000


class Afternoon:
    """Everyone's clients in threads, each noting what it got, until ``stop``."""

    def __init__(self, url: str, keys: dict[str, str]):
        self.url = url
        self.keys = keys
        self.stop = threading.Event()
        self.queued: dict[str, list[float]] = {"people": [], "batch": []}
        self.agent_turns = 0
        self.left = 0
        self.failures: list[str] = []

    def person(self, name: str) -> None:
        while not self.stop.is_set():
            body = {"model": "llama3.2", "messages": [{"role": "user", "content": f"hi from {name}"}]}
            with requests.post(self.url + "/api/chat", headers=auth(self.keys[name]), json=body, stream=True,
                               timeout=60) as answer:
                lines = [json.loads(line) for line in answer.iter_lines() if line]
            if answer.status_code != 200 or not lines[-1].get("done"):
                self.failures.append(f"{name}: {answer.status_code} {lines[-1:]}")
            else:
                self.queued["people"].append(_queued(answer))
            self.stop.wait(1)

    def agent(self) -> None:
        tools = [{"name": "read_file", "description": "Read a file of the repository",
                  "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
        with anthropic.Anthropic(base_url=self.url, api_key=self.keys["agent"], max_retries=0) as client:
            self._agent_turns(client, tools)

    def _agent_turns(self, client: anthropic.Anthropic, tools: list[dict]) -> None:
        while not self.stop.is_set():
            try:
                with client.messages.stream(model="llama3.2", max_tokens=200, tools=tools,
                                            messages=[{"role": "user", "content": "look at main.py"}]) as stream:
                    message = stream.get_final_message()
                if message.stop_reason not in ("end_turn", "tool_use"):
                    self.failures.append(f"agent: stop_reason {message.stop_reason}")
                self.agent_turns += 1
            except anthropic.APIError as error:
                self.failures.append(f"agent: {error!r}")
            self.stop.wait(0.5)

    def batch(self) -> None:
        while not self.stop.is_set():
            answer = requests.post(self.url + "/api/generate", headers=auth(self.keys["batch"]), timeout=120,
                                   json={"model": "llama3.2", "prompt": "summarise the report", "stream": False})
            if answer.status_code != 200 or not answer.json().get("done"):
                self.failures.append(f"batch: {answer.status_code} {answer.text[:200]}")
            else:
                self.queued["batch"].append(_queued(answer))

    def quitter(self) -> None:
        while not self.stop.is_set():
            body = {"model": "llava", "stream": True, "messages": [{"role": "user", "content": "tell me all"}]}
            with requests.post(self.url + "/v1/chat/completions", headers=auth(self.keys["quitter"]), json=body,
                               stream=True, timeout=60) as answer:
                if answer.status_code != 200 or not next(answer.iter_lines(), b"").startswith(b"data:"):
                    self.failures.append(f"quitter: {answer.status_code}")
                else:
                    self.left += 1  # leaving the with block closes the connection after one line
            self.stop.wait(0.5)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.person, args=(name,)) for name in ("carol", "dave")]
        threads += [threading.Thread(target=self.agent), threading.Thread(target=self.quitter)]
        threads += [threading.Thread(target=self.batch) for _ in range(BATCH_CLIENTS)]
        for thread in threads:
            thread.start()
        return threads


def _reach(url: str, token: str) -> list[tuple[str, int, str]]:
    """Send every reach and the doubled field as the limited key; return (what, status, body) of each."""
    answers = [(f"{method} {path} {json.dumps(body)}", requests.request(method, url + path, headers=auth(token),
                                                                         json=body, timeout=30))
               for method, path, body in REACHES]
    answers.append(("the model field twice", requests.post(url + "/api/chat", data=TWICE, timeout=30, headers={
        **auth(token), "Content-Type": "application/json"})))
    return [(what, answer.status_code, answer.text) for what, answer in answers]


def _touches_forbidden(call) -> bool:
    body = call.json if isinstance(call.json, dict) else {}
    named = {str(body.get(field, "")).strip().lower() for field in ("model", "name", "source", "from")}
    return bool(named & FORBIDDEN) or call.path in ("/api/copy", "/api/create", "/api/pull", "/api/delete")


def _samples(proxy) -> dict[str, float]:
    text = requests.get(proxy.url + "/metrics", headers=auth(SCRAPE), timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def _idle(proxy) -> bool:
    samples = _samples(proxy)
    return samples.get("ollama_proxy_scheduler_waiting") == 0 and samples.get("ollama_proxy_scheduler_slots_busy") == 0


def test_an_afternoon_of_people_an_agent_a_batch_job_a_quitter_and_a_limited_key(front, boxes):
    proxy, nginx = front
    names = {"carol": [], "dave": [], "agent": [], "batch": ["--class", "batch"], "quitter": [],
             "limited": ["--models", "llama3*"]}
    keys = {name: create_key(proxy, "--name", name, *extra) for name, extra in names.items()}
    afternoon = Afternoon(nginx.url, keys)
    threads = afternoon.start()
    try:
        time.sleep(2)  # the batch job's backlog is there before the limited key starts
        reaches = _reach(nginx.url, keys["limited"])
        listed = requests.get(nginx.url + "/api/tags", headers=auth(keys["limited"]), timeout=30).json()
        time.sleep(LOAD_SECONDS)
    finally:
        afternoon.stop.set()
        for thread in threads:
            thread.join(timeout=120)

    assert not [thread for thread in threads if thread.is_alive()], "a client never got its answer"
    assert afternoon.failures == []
    assert len(afternoon.queued["people"]) >= 4 and afternoon.agent_turns >= 4 and afternoon.left >= 4
    assert len(afternoon.queued["batch"]) >= BATCH_CLIENTS, "the batch job starved"

    # Every reach refused, each in its surface's own error shape; none reached a GPU box.
    for what, status, text in reaches:
        assert status in (400, 403, 404), (what, status, text)
        error = json.loads(text)
        assert error.get("type") == "error" if "/v1/messages" in what else "error" in error, (what, text)
    assert [m["name"] for m in listed["models"]] == ["llama3.2:latest"]
    reached = [(call.path, call.json) for fake in boxes for call in fake.requests if _touches_forbidden(call)]
    assert reached == []

    # The people went ahead of the batch backlog: they waited for a slot to free, not for the queue.
    people, batch = sorted(afternoon.queued["people"]), sorted(afternoon.queued["batch"])
    print(f"queued, people: median {people[len(people) // 2]:.3f} s, max {people[-1]:.3f} s; "
          f"batch: median {batch[len(batch) // 2]:.3f} s, max {batch[-1]:.3f} s")
    assert people[len(people) // 2] * 4 < batch[len(batch) // 2]

    # No GPU time after a client left: each stream the quitter left ended early on the box.
    left = [stream for fake in boxes for stream in fake.streams if stream.model and stream.model.startswith("llava")]
    assert len(left) == afternoon.left and not any(stream.completed for stream in left)
    assert wait_for(lambda: all(stream.closed_at is not None for stream in left), timeout=10)

    # Nothing held afterwards, nothing waiting; nginx saw no 5xx.
    assert wait_for(lambda: _idle(proxy), timeout=10), _samples(proxy)
    assert [line for line in nginx.access_lines() if re.search(r'" 5\d\d ', line)] == []
    assert "Traceback" not in proxy.stderr()
