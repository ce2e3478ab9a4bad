"""The prompt-cache oracle: can a key of team green read team red's prompt, digit by digit?

Real gunicorn, two gevent workers, fake Ollamas that keep llama-server's slot and RAM prompt cache
(tests/fakes/ollama_cache.py) and say how much came from it (``prompt_eval_cached_count``, as an Ollama
that sends it would). Before each guess the victim (team red) sends its prompt again, as it would in
use; the attacker (team green) then sends one guess of the last digit followed by the text every prompt
of that application carries. The right guess shares the victim's whole prompt, a wrong one only what
comes before the digit: on a shared server it reads REST_TOKENS fewer tokens, REST_TOKENS *
TOKEN_SECONDS seconds sooner.
"""

from __future__ import annotations

import statistics
import time

import pytest
import requests

from tests.actors import TESTER
from tests.e2e import processes
from tests.e2e.conftest import auth, base_config
from tests.e2e.server import ProxyServer, start_server, wait_for
from tests.fakes.ollama import FakeOllama

MODEL = "llama3.2"
SLOTS = {"num_parallel": 1, "max_loaded_models": 1}
TOKEN_SECONDS = 0.002  # the fakes' prefill of a token not in cache
REST = " ".join(f"step {i}: open the vault only with both keys and log who did." for i in range(20))
REST_TOKENS = 200  # about: what a right guess reads from cache beyond a wrong one (0.4 s of prefill)
SECRET, GUESSES = "4 7 1 1", ("4 7 1 0", "4 7 1 1", "4 7 1 2", "4 7 1 3")
LEAK = REST_TOKENS * TOKEN_SECONDS / 2  # seconds: a gap this wide between the right guess and the wrong is a leak
pytestmark = pytest.mark.alone  # a gap of 0.2 s told apart from noise: tests beside these would stretch it


def _prompt(code: str) -> str:
    return f"vault code is {code}. {REST}"


@pytest.fixture
def fakes():
    servers = [FakeOllama(prompt_cache=True, prompt_token_seconds=TOKEN_SECONDS, reports_cached=True,
                          **SLOTS).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def _site(fakes, tmp_path, isolation: str, team_servers: bool):
    """The proxy of two workers before one server (shared), or two servers kept to red and to green."""
    config = base_config(fakes[0].url, scheduling=True, **SLOTS)
    config["scheduling"] = {"prompt_cache_isolation": isolation}
    config["routing"] = {"refresh_interval": 0.5}
    if team_servers:
        config["service"]["teams"] = ["red"]
        config["backends"] = [{"name": "gpu-green", "type": "ollama", "base_url": fakes[1].url, "teams": ["green"],
                               **SLOTS}]
    proxy = start_server(ProxyServer(config, tmp_path / "proxy", workers=2))
    assert wait_for(lambda: processes.lines_to_arbiter(proxy.process.pid) == 1, timeout=30)
    store = proxy.open_store()
    try:
        for team in ("red", "green"):
            store.create_team(team, by=TESTER)
        victim = store.create_key("victim", team="red", by=TESTER)[1]
        attacker = store.create_key("attacker", team="green", by=TESTER)[1]
    finally:
        store.close()
    for fake in fakes:
        fake.script(MODEL, chunk_delay=0.0)
    return proxy, victim, attacker


def _native(proxy, key: str, code: str) -> tuple[dict, dict, float]:
    """Ask on the native API; return the answer less its text, the Server-Timing names, and the seconds taken."""
    asked = time.monotonic()
    answer = requests.post(proxy.url + "/api/chat", headers=auth(key), timeout=60, json={
        "model": MODEL, "stream": False, "messages": [{"role": "user", "content": _prompt(code)}]})
    took = time.monotonic() - asked
    assert answer.status_code == 200, answer.text
    timing = dict(part.strip().split(";dur=") for part in answer.headers["Server-Timing"].split(","))
    body = answer.json()
    return body, {name for name in timing if name != "proxy"}, took  # the reading's time: body's duration


def _openai(proxy, key: str, code: str) -> dict:
    answer = requests.post(proxy.url + "/v1/chat/completions", headers=auth(key), timeout=60, json={
        "model": MODEL, "messages": [{"role": "user", "content": _prompt(code)}]})
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    return {name: usage[name] for name in usage if name != "completion_tokens"}


def _anthropic(proxy, key: str, code: str) -> dict:
    answer = requests.post(proxy.url + "/v1/messages", headers={"x-api-key": key}, timeout=60, json={
        "model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": _prompt(code)}]})
    assert answer.status_code == 200, answer.text
    return {name: value for name, value in answer.json()["usage"].items() if name != "output_tokens"}


def _oracle(proxy, victim: str, attacker: str) -> dict[str, dict]:
    """Every guess, each after the victim's prompt: what each surface told the attacker, and how long it took."""
    _native(proxy, attacker, "4 7 1 9")  # the attacker's own last guess is before each: alike for all
    seen = {}
    for code in GUESSES:
        _native(proxy, victim, SECRET)
        body, timing, took = _native(proxy, attacker, code)
        _native(proxy, victim, SECRET)
        openai_usage = _openai(proxy, attacker, code)
        _native(proxy, victim, SECRET)
        anthropic_usage = _anthropic(proxy, attacker, code)
        told = {name: body[name] for name in body if name.startswith("prompt_eval_c")}  # the counts, not durations
        seen[code] = {"told": (told, sorted(timing), openai_usage, anthropic_usage), "seconds": took,
                      "prefill": body["prompt_eval_duration"] / 1e9, "keys": sorted(body)}
    return seen


def _gap(seen: dict[str, dict], figure: str) -> float:
    """How far the right guess's ``figure`` lies below the wrong guesses' lowest."""
    wrong = [seen[code][figure] for code in GUESSES if code != SECRET]
    return min(wrong) - seen[SECRET][figure]


def test_with_isolation_off_a_shared_server_tells_the_code(fakes, tmp_path):
    proxy, victim, attacker = _site(fakes, tmp_path, "off", team_servers=False)
    try:
        seen = _oracle(proxy, victim, attacker)
    finally:
        proxy.stop()
    told = {code: seen[code]["told"] for code in GUESSES}
    assert told[SECRET] not in [told[code] for code in GUESSES if code != SECRET], told  # the fields tell it
    assert _gap(seen, "prefill") > LEAK and _gap(seen, "seconds") > LEAK, seen  # and so does time


def test_with_isolation_on_a_shared_server_adds_no_figure_but_its_timing_remains(fakes, tmp_path):
    """No field the proxy adds tells the right guess; Ollama's durations and the time taken still do."""
    proxy, victim, attacker = _site(fakes, tmp_path, "team", team_servers=False)
    try:
        seen = _oracle(proxy, victim, attacker)
        entry_seen = proxy.access_lines()
    finally:
        proxy.stop()
    told = {code: seen[code]["told"] for code in GUESSES}
    assert all(told[code] == told[SECRET] for code in GUESSES), told
    assert all(seen[code]["keys"] == seen[SECRET]["keys"] for code in GUESSES), seen
    assert entry_seen  # the operator's access log keeps the figures (docs/tenants.md)
    # What remains, as docs/tenants.md says: a shared server's reading time. Only servers per team close it.
    assert _gap(seen, "prefill") > LEAK and _gap(seen, "seconds") > LEAK, seen


def test_with_servers_per_team_no_field_nor_time_tells_the_code(fakes, tmp_path):
    proxy, victim, attacker = _site(fakes, tmp_path, "team", team_servers=True)
    try:
        seen = _oracle(proxy, victim, attacker)
    finally:
        proxy.stop()
    told = {code: seen[code]["told"] for code in GUESSES}
    assert all(told[code] == told[SECRET] for code in GUESSES), told
    assert all(seen[code]["keys"] == seen[SECRET]["keys"] for code in GUESSES), seen
    assert abs(_gap(seen, "prefill")) < LEAK / 4, seen
    spread = max(seen[code]["seconds"] for code in GUESSES) - min(seen[code]["seconds"] for code in GUESSES)
    assert spread < LEAK, seen  # the right guess lies within the wrong ones' noise
    sent = [len([r for r in fake.scheduler.records() if r.cache_slot is not None]) for fake in fakes]
    assert sent == [3 * len(GUESSES), 3 * len(GUESSES) + 1], sent  # the victim's all on red's, the guesses on green's
    assert statistics.median(seen[code]["prefill"] for code in GUESSES) > LEAK  # each read its rest again
