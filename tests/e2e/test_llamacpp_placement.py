"""Placement by prompt cache on the real engine: two llama-servers run as Ollama 0.33 runs them, two slots each.

People's conversations (a system text of their own, then turns), one after another, go straight to
the servers, each conversation kept on one server ("sticky": the best a client that knows can do),
then through the proxy (two gevent workers, default settings). The servers keep what each turn read
from cache (llama-server's ``cache_n``) and what it read again (``prompt_n``); their answers say only
the sum, as Ollama 0.33's do, or the cached part too (``reports_cached``, as no release yet does).
Through the proxy, later turns read again no more than sticky's (a tenth of slack), no turn waits in
the proxy's queue while a slot is idle, and the cached tokens the proxy reports are the servers' own
where they say them, none where they do not; its own estimate is counted apart.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e import processes
from tests.e2e.chaos import metric_sum
from tests.e2e.conftest import SCRAPE, auth, base_config
from tests.e2e.conversations import Conversation, Turn
from tests.e2e.ollama_on_llama import Answered, OllamaOnLlama
from tests.e2e.server import ProxyServer, start_server, wait_for

SYSTEM_TOKENS, TURN_TOKENS, TURNS = 270, 27, 3
KEYS = {name: f"{name}-token-0123456789" for name in ("ann", "bob", "cat", "dan", "eve")}
_ASKED = re.compile(r"(\S+) asks, turn (\d+):")
HITS = "ollama_proxy_prompt_cache_{}_hits_total"
ESTIMATED = "ollama_proxy_prompt_cached_tokens_estimated_total"


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    servers = [OllamaOnLlama(tmp_path_factory.mktemp(f"llama{i}"), num_parallel=2, threads=1).start()
               for i in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def proxy(engines, tmp_path_factory):
    server = _proxy(engines, tmp_path_factory.mktemp("proxy"))
    yield server
    server.stop()


def _proxy(engines: list[OllamaOnLlama], workdir) -> ProxyServer:
    """The proxy at its defaults before the servers ``engines``, two slots each, started and knowing them loaded."""
    gpu1, *others = engines
    config = base_config(gpu1.url, scheduling=True, num_parallel=2, max_loaded_models=1, read_timeout=600)
    config["auth"]["generate_tokens"] += [{"name": name, "token": token} for name, token in KEYS.items()]
    config["backends"] = [{"name": f"gpu{i}", "type": "ollama", "base_url": engine.url, "num_parallel": 2,
                           "max_loaded_models": 1} for i, engine in enumerate(others, start=2)]
    config["routing"] = {"refresh_interval": 0.5}
    # One team's people: the cached-token figures the servers say reach them (docs/tenants.md; withheld on a
    # server shared between teams, as test_tenants.py shows).
    config["scheduling"] = {**config.get("scheduling", {}), "prompt_cache_isolation": "off"}
    server = start_server(ProxyServer(config, workdir, workers=2))
    # Both workers in touch with the arbiter before the first turn, whichever worker takes it.
    assert wait_for(lambda: processes.lines_to_arbiter(server.process.pid) == 1, timeout=30)
    assert wait_for(lambda: "ollama_proxy_scheduler_slots_busy{" in requests.get(
        server.url + "/metrics", headers=auth(SCRAPE), timeout=10).text, timeout=30)  # the model known loaded
    return server


def _talk(conversations: list[Conversation], send) -> list[Turn]:
    """Each conversation's turns in turn, one after another: ``send(conversation)`` names where, and how."""
    turns = []
    for _ in range(TURNS):
        for conversation in conversations:
            url, token = send(conversation)
            turns.append(conversation.talk(url, token))
    return turns


def _read(engines: list[OllamaOnLlama], who: set[str]) -> dict[tuple[str, int], tuple[int, Answered]]:
    """What each server says each turn of ``who``'s conversations read: (who, turn) -> (server, its answer)."""
    found = {}
    for index, engine in enumerate(engines):
        for answered in engine.answers:
            asked = _ASKED.match(answered.last)
            if asked and asked.group(1) in who:
                found[(asked.group(1), int(asked.group(2)))] = (index, answered)
    return found


def _listed(read: dict) -> str:
    """Each turn's server, and what it read from cache and again, turn by turn: what a failure shows."""
    return "".join(f"\n{who} turn {turn}: server {index}, cached {answered.cached}, read {answered.read}"
                   for (who, turn), (index, answered) in sorted(read.items(), key=lambda item: item[0][::-1]))


def _reread_later(read: dict) -> int:
    return sum(answered.read for (_, turn), (_, answered) in read.items() if turn > 0)


@pytest.mark.parametrize("people, one_key, reports", [(3, False, False), (5, True, True)],
                         ids=["three people, Ollama 0.33", "five chats, one key, an Ollama that says its cache"])
def test_later_turns_read_again_no_more_than_each_conversation_kept_on_one_server(engines, proxy, people, one_key,
                                                                                  reports):
    for engine in engines:
        engine.reports_cached = reports
    try:
        _later_turns(engines, proxy, people, one_key, reports)
    finally:
        for engine in engines:
            engine.reports_cached = False


def _later_turns(engines: list[OllamaOnLlama], proxy, people: int, one_key: bool, reports: bool) -> None:
    names = list(KEYS)[:people]
    run = "one" if one_key else "own"
    sticky = [Conversation(f"{name}-{run}-sticky", SYSTEM_TOKENS, TURN_TOKENS) for name in names]
    home = {c.who: engines[i % 2].url for i, c in enumerate(sticky)}
    _talk(sticky, lambda c: (home[c.who], None))
    through = [Conversation(f"{name}-{run}-proxy", SYSTEM_TOKENS, TURN_TOKENS) for name in names]
    cached_before = metric_sum(proxy.url, "ollama_proxy_prompt_cached_tokens_total")
    estimated_before = metric_sum(proxy.url, ESTIMATED)
    turns = _talk(through, lambda c: (proxy.url, KEYS["ann" if one_key else c.who.split("-")[0]]))

    read_sticky = _read(engines, {c.who for c in sticky})
    read_proxy = _read(engines, {c.who for c in through})
    assert len(read_proxy) == len(read_sticky) == people * TURNS
    assert _reread_later(read_proxy) <= 1.1 * _reread_later(read_sticky), _listed(read_sticky) + _listed(read_proxy)
    servers = {who: {index for (w, _), (index, _) in read_proxy.items() if w == who} for who in home}
    assert all(len(used) == 1 for who, used in servers.items() if who.endswith("proxy")), servers  # each stays
    assert {index for (index, _) in read_proxy.values()} == {0, 1}  # both servers work
    assert max(turn.queued for turn in turns) < 0.1  # a slot was free for each: none waited in the queue
    # What the proxy reports read from cache is what the servers say, to the token; nothing where they say nothing.
    held = sum(answered.cached for _, answered in read_proxy.values())
    told = [read_proxy[(t.who, t.number)][1].cached if reports else None for t in turns]
    assert [turn.cached for turn in turns] == told
    assert wait_for(lambda: metric_sum(proxy.url, "ollama_proxy_prompt_cached_tokens_total") - cached_before == (
        held if reports else 0))
    # The scheduler's own estimate, counted apart, is near what the servers held, whether or not they say it.
    assert wait_for(lambda: 0.5 * held < metric_sum(proxy.url, ESTIMATED) - estimated_before < 2 * held)


def test_the_mirror_predicts_the_hits_the_servers_confirm(engines, proxy):
    predicted, confirmed = (HITS.format(kind) for kind in ("predicted", "confirmed"))
    before = {name: metric_sum(proxy.url, name) for name in (predicted, confirmed)}
    chats = [Conversation(f"{name}-hits", SYSTEM_TOKENS, TURN_TOKENS) for name in ("ann", "bob")]
    _talk(chats, lambda c: (proxy.url, KEYS[c.who.split("-")[0]]))
    later = len(chats) * (TURNS - 1)
    assert wait_for(lambda: metric_sum(proxy.url, predicted) - before[predicted] == later)
    assert metric_sum(proxy.url, confirmed) - before[confirmed] == later


def test_a_conversation_comes_back_to_its_server_while_the_other_is_busy_beside_it(engines, proxy):
    """Two people talk at once: each turn stays where its conversation is, and none waits behind the other."""
    chats = [Conversation(f"{name}-together", SYSTEM_TOKENS, TURN_TOKENS) for name in ("cat", "dan")]
    with ThreadPoolExecutor(2) as pool:
        turns = list(pool.map(lambda c: [c.talk(proxy.url, KEYS[c.who.split("-")[0]]) for _ in range(TURNS)],
                              chats))
    read = _read(engines, {c.who for c in chats})
    for chat in chats:
        used = {index for (who, _), (index, _) in read.items() if who == chat.who}
        assert len(used) == 1, _listed(read)
        later = [answered.read for (who, turn), (_, answered) in read.items() if who == chat.who and turn > 0]
        assert max(later) < SYSTEM_TOKENS / 2, read  # what is new, not the conversation again
    assert max(turn.queued for mine in turns for turn in mine) < 0.1


def test_a_turn_read_beside_a_long_first_turn_is_a_hit_confirmed(tmp_path):
    """llama-server reads its slots' prompts in the same batches, the first slot's first: a turn that comes while
    the other slot reads a long prompt ends with it, its time covering both. The proxy, told only that time (as by
    Ollama 0.33), still confirms the hit the server's cache_n shows."""
    with OllamaOnLlama(tmp_path / "llama", num_parallel=2, threads=1) as engine:
        server = _proxy([engine], tmp_path / "proxy")
        try:
            def send(chat: Conversation) -> tuple[str, str]:
                return server.url, KEYS[chat.who.split("-")[0]]

            first, mine, long = (Conversation(f"{name}-beside", tokens, TURN_TOKENS)
                                 for name, tokens in (("cat", SYSTEM_TOKENS), ("dan", SYSTEM_TOKENS), ("eve", 1500)))
            first.talk(*send(first))  # in slot 0, so the long prompt takes it (the least recently used) from it
            mine.talk(*send(mine))  # in slot 1: the conversation whose next turn comes while the long one reads
            before = {kind: metric_sum(server.url, HITS.format(kind)) for kind in ("predicted", "confirmed")}
            with ThreadPoolExecutor(1) as pool:
                reading = pool.submit(long.talk, *send(long))
                time.sleep(2.0)  # well into its 1,500 tokens (several seconds at one thread)
                mine.talk(*send(mine))
                reading.result()
            read = _read([engine], {mine.who, long.who})
            turn = read[(mine.who, 1)][1]
            assert turn.cached > SYSTEM_TOKENS and turn.prompt_ms > 3 * read[(mine.who, 0)][1].prompt_ms * (
                turn.read / read[(mine.who, 0)][1].read), _listed(read)  # a hit, its time stretched by the other's
            assert wait_for(lambda: metric_sum(server.url, HITS.format("predicted")) - before["predicted"] == 1)
            assert metric_sum(server.url, HITS.format("confirmed")) - before["confirmed"] == 1
        finally:
            server.stop()
