"""A coding agent's next turn goes to the server whose llama-server still holds its conversation.

Two fake Ollama servers run two requests at once each and keep their slots' prompts and a RAM prompt
cache, as the llama-server under Ollama 0.33 does (tests/fakes/ollama_cache.py, held to the real one by
tests/llama_server_cases.py): a turn reads only what the server does not hold, TOKEN_SECONDS a token.
As 0.33's, the answers do not say how much came from the cache (only prompt_eval_duration tells); some
tests run again with fakes that say it, as an Ollama with prompt_eval_cached_count would. An agent
sends its whole conversation again each turn (about 8,000 tokens); sent to the other server, it reads
all of it again. With two servers a turn sent anywhere would land right half the time: each test
follows several conversations over several turns, so chance cannot pass it.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.e2e import processes
from tests.e2e.conftest import ALICE, SCRAPE, auth, base_config
from tests.e2e.server import ProxyServer, start_server, wait_for
from tests.fakes.ollama import FakeOllama
from tests.fakes.ollama_runner import RequestRecord

MODEL = "llama3.2"
SLOTS = {"num_parallel": 2, "max_loaded_models": 1}
CONTEXT = 32_768  # what a team running agents sets (OLLAMA_CONTEXT_LENGTH): 4,096 would cut their conversations
TOKEN_SECONDS = 0.0002  # the fakes' prefill: an agent's whole conversation takes about 1.6 s
AGENTS = {name: f"{name}-token-0123456789" for name in ("ann", "bob", "cat", "dan")}
TELL_FIGURES = ("test_each_agents_next_turns_go_to_the_server_that_holds_its_conversation",
                "test_server_timing_tells_the_prefill")
LITTLE = 100  # tokens a turn reads when its slot held the conversation: the last answer and the new message


@pytest.fixture
def gpus(request):
    """Two fakes; parametrized True, their answers say how many prompt tokens came from the cache."""
    reports = getattr(request, "param", False)
    servers = [FakeOllama(prompt_cache=True, prompt_token_seconds=TOKEN_SECONDS, reports_cached=reports,
                          default_num_ctx=CONTEXT, **SLOTS).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def proxy(gpus, tmp_path, request):
    """The proxy, two workers, in front of both fakes; the model loaded on both and the proxy aware of it."""
    gpu1, gpu2 = gpus
    config = base_config(gpu1.url, scheduling=True, **SLOTS)
    config["auth"]["generate_tokens"] += [{"name": name, "token": token} for name, token in AGENTS.items()]
    config["backends"] = [{"name": "gpu2", "type": "ollama", "base_url": gpu2.url, **SLOTS}]
    config["routing"] = {"refresh_interval": 0.5}
    if request.function.__name__ in TELL_FIGURES:  # shared servers withhold them with isolation on (docs/tenants.md)
        config["scheduling"] = {"prompt_cache_isolation": "off"}
    server = start_server(ProxyServer(config, tmp_path / "proxy", workers=2))
    # Until both workers are on the scheduler, it lends the one it knows free slots, and a request started on a
    # lent slot is not placed by its prompt: wait for the other, and warm the model only then.
    assert wait_for(lambda: processes.lines_to_arbiter(server.process.pid) == 1, timeout=30)
    for fake in gpus:
        fake.script(MODEL, chunk_delay=0.02)
        requests.post(fake.url + "/api/chat", json={"model": MODEL}, timeout=10).raise_for_status()
    assert wait_for(lambda: _loaded_on(server) == 2, timeout=10)
    yield server
    server.stop()


def _loaded_on(proxy) -> int:
    """How many servers the proxy sees the model loaded on."""
    text = requests.get(proxy.url + "/metrics", headers=auth(SCRAPE), timeout=10).text
    return sum(line.startswith("ollama_proxy_scheduler_slots_busy{") and f'model="{MODEL}:latest"' in line
               for line in text.splitlines())


def _conversation(name: str) -> tuple[list[dict], list[dict]]:
    """An agent's first prompt, about 8,000 tokens: a system prompt and two tools of its own, and its task."""
    rules = " ".join(f"{name} keeps file {i} tidy and tested." for i in range(950))
    tools = [{"type": "function", "function": {
        "name": f"{verb}_file", "description": f"{verb.capitalize()} a file of {name}'s project.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}
        for verb in ("read", "edit")]
    return [{"role": "system", "content": rules}, {"role": "user", "content": _ask(name, 0)}], tools


def _ask(name: str, turn: int) -> str:
    """What an agent says in one turn; it marks the turn in the fakes' records."""
    return f"{name} turn {turn}: run the tests again and fix whatever fails in the parser"


def _runs(fakes: list[FakeOllama], text: str) -> list[tuple[int, RequestRecord]]:
    """Each request a fake took whose last message is ``text``: the fake's index and the request's record."""
    return [(index, record) for index, fake in enumerate(fakes) for record in fake.scheduler.records()
            if record.cache_slot is not None and record.origin.json["messages"][-1]["content"] == text]


def _agent(proxy, name: str, *, think: float, turns: float = math.inf,
           stop: threading.Event | None = None) -> list[tuple[int | None, str]]:
    """Work as a coding agent on the OpenAI API, ``turns`` turns or until ``stop``.

    Return, for each turn, the cached prompt tokens its answer told (usage.prompt_tokens_details.cached_tokens,
    None where it told none, as with Ollama 0.33) and its request id.
    """
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=AGENTS[name], max_retries=0, timeout=60)
    messages, tools = _conversation(name)
    said = []
    with client:
        while len(said) < turns and not (stop and stop.is_set()):
            if said:
                time.sleep(think)  # runs a tool, then comes back with the whole conversation and the result
                messages.append({"role": "user", "content": _ask(name, len(said))})
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, tools=tools)
            answer = raw.parse()
            messages.append({"role": "assistant", "content": answer.choices[0].message.content})
            details = answer.usage.prompt_tokens_details
            said.append((None if details is None else details.cached_tokens, raw.headers["X-Request-Id"]))
    return said


def _read(fakes: list[FakeOllama], name: str, turns: int) -> list[int]:
    """What each of an agent's turns read again, not from cache, as the fakes that ran them recorded it."""
    return [record.prompt_tokens - record.cached_tokens for turn in range(turns)
            for _, record in _runs(fakes, _ask(name, turn))]


@pytest.mark.parametrize("gpus", [False, True], indirect=True, ids=["Ollama 0.33", "an Ollama that says"])
def test_each_agents_next_turns_go_to_the_server_that_holds_its_conversation(proxy, gpus):
    thinks, turns = {"ann": 0.2, "bob": 0.5, "cat": 0.8}, 6  # each comes back while the others run, or think
    reports = gpus[0].reports_cached
    with ThreadPoolExecutor(len(thinks)) as pool:
        working = {name: pool.submit(_agent, proxy, name, think=think, turns=turns) for name, think in thinks.items()}
        said = {name: agent.result() for name, agent in working.items()}
    for name in thinks:
        runs = [run for turn in range(turns) for run in _runs(gpus, _ask(name, turn))]
        servers = [server for server, _ in runs]
        assert servers == [servers[0]] * turns, (name, servers)
        uncached = [record.prompt_tokens - record.cached_tokens for _, record in runs]
        assert uncached[0] > 7000 and max(uncached[1:]) < LITTLE, (name, uncached)
        # The answer tells what Ollama said it read from cache, and nothing where it said nothing.
        cached = [record.cached_tokens for _, record in runs]
        assert [told for told, _ in said[name]] == (cached if reports else [None] * turns), name
        # The access log keeps that apart from the scheduler's estimate: about the conversation, from turn 1 on.
        entries = [proxy.access_entry(request_id) for _, request_id in said[name]]
        assert [entry["cached_tokens"] for entry in entries] == (cached if reports else [None] * turns), name
        estimated = [entry["cached_tokens_estimated"] for entry in entries]
        assert estimated[0] == 0 and all(0.5 * c < e < 2 * c for c, e in zip(cached[1:], estimated[1:], strict=True)), (
            name, cached, estimated)


def _question(proxy, number: int) -> float:
    """Ask a short question as another person; return the seconds it took to be answered."""
    asked = time.monotonic()
    answer = requests.post(proxy.url + "/api/chat", headers=auth(ALICE), timeout=60, json={
        "model": MODEL, "stream": False, "messages": [{"role": "user", "content": f"question {number}: is it up?"}]})
    assert answer.status_code == 200
    return time.monotonic() - asked


def test_a_person_asking_beside_busy_agents_is_answered_promptly(proxy, gpus):
    """Four agents keep the four slots busy; a person asks three short questions in a row.

    No slot is free when the first comes, and each holds a conversation; from then on the agents leave
    one free for questions. The conversation a question pushes out of its slot stays in that server's RAM
    cache: its agent's next turn goes back there, and reads no more than the others.
    """
    chunk, think = 0.1, 0.3
    turn_seconds = chunk * len(_ask("ann", 1).split())  # an agent's answer echoes its message, a chunk a word
    for fake in gpus:
        fake.script(MODEL, chunk_delay=chunk)
    stop = threading.Event()
    with ThreadPoolExecutor(len(AGENTS)) as pool:
        agents = {name: pool.submit(_agent, proxy, name, think=think, stop=stop) for name in AGENTS}
        try:
            # Four agents, four slots: each holds a conversation, and is busy or about to be again.
            assert wait_for(lambda: all(_runs(gpus, _ask(name, 1)) for name in AGENTS), timeout=20)
            answered = []
            for number in range(3):
                answered.append(_question(proxy, number))
                time.sleep(1)
        finally:
            stop.set()
    read = {name: _read(gpus, name, len(agent.result())) for name, agent in agents.items()}
    first, *later = answered
    # The first waits for a slot to free (a turn and a think at most); then its answer. Doubled: slack for a
    # loaded machine.
    assert first < 2 * (turn_seconds + think), answered
    # The later ones find the slot kept free: each is answered before an agent's turn could have ended.
    assert max(later) < turn_seconds, answered
    assert all(max(tokens[1:]) < LITTLE for tokens in read.values()), read  # no conversation read again


def _timings(answer: requests.Response) -> dict[str, float]:
    """The Server-Timing header's durations by name, in milliseconds."""
    return {name.strip(): float(ms) for name, ms in (part.split(";dur=") for part in
                                                    answer.headers["Server-Timing"].split(","))}


def test_server_timing_tells_the_prefill(proxy, gpus):
    """Two conversations in turn on the native API: each turn after the first reads its conversation from cache.

    Placed by free slots alone, both would go to the same server, and each would take the other's slot there.
    """
    chats = {name: _conversation(name)[0] for name in ("ann", "bob")}
    prefill = {name: [] for name in chats}
    for turn in range(3):
        for name, messages in chats.items():
            if turn:
                messages.append({"role": "user", "content": _ask(name, turn)})
            answer = requests.post(proxy.url + "/api/chat", headers=auth(AGENTS[name]), timeout=60,
                                   json={"model": MODEL, "messages": messages, "stream": False})
            done = answer.json()
            messages.append(done["message"])
            timing = _timings(answer)["prefill"]
            assert timing == pytest.approx(done["prompt_eval_duration"] / 1e6, abs=0.01)
            prefill[name].append(timing)
    for name, times in prefill.items():
        first, *cached = times
        assert first > 1000 and max(cached) < first / 20, (name, times)  # 7,800 tokens read, then some 40


@pytest.mark.parametrize("gpus", [False, True], indirect=True, ids=["Ollama 0.33", "an Ollama that says"])
def test_a_probe_with_another_keys_conversation_is_not_sent_to_the_server_that_holds_it(proxy, gpus):
    """dan guesses bob's conversation and asks on: placement does not send him to bob's cached prompt, whose reuse
    the answer's cached tokens (and, on a real GPU, its speed) would show him."""
    _agent(proxy, "bob", think=0, turns=1)
    [(bobs_server, _)] = _runs(gpus, _ask("bob", 0))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=AGENTS["dan"], max_retries=0, timeout=60)
    messages, tools = _conversation("bob")
    probe = [*messages, {"role": "assistant", "content": "done"}, {"role": "user", "content": "dan probes"}]
    with client:
        answer = client.chat.completions.create(model=MODEL, messages=probe, tools=tools)
    [(probed_server, record)] = _runs(gpus, "dan probes")
    assert probed_server != bobs_server
    assert record.cached_tokens < LITTLE  # nothing of bob's
    assert answer.usage.prompt_tokens_details is None  # a shared server's figures are withheld (docs/tenants.md)
