"""People's growing conversations on the real engine: two llama-servers run as Ollama 0.33 runs them.

``python -m bench.scheduling --only agents --real`` starts two llama-servers (llama.cpp's, SmolLM2-135M,
``-np 2``, their default RAM prompt caches, one thread each) behind a thin layer speaking Ollama's chat
API (tests/e2e/ollama_on_llama.py). Conversations of a ``--system-tokens`` system text of their own,
growing by a question of ``--turn-tokens`` and its answer a turn, ``--turns`` turns each, run side by
side (each asks its next turn half a second after its answer): three of them (fewer than the four
slots) and five (more), each with its own key and all with one key; and two and three that open with one
system text shared by all, as a team's coding agents do (llama-server gives the second the first one's slot
over an empty one, and the two then take it from each other: only the choice of server keeps them apart).
``--case`` runs some of them (``CASES``). Each is run straight to the
servers, round-robin request by request and sticky (each conversation kept on one server), and through
the proxy (two gevent workers, default settings); every run starts the servers and the proxy afresh.

Printed per run: what the servers read again on later turns (llama-server's ``prompt_n``, of the whole
prompts), the later turns' time to first token at the client and at the servers (from the request's
arrival at Ollama's API: what the proxy's way adds is the difference), the time requests waited in the
proxy's queue, the cached tokens the proxy estimated (``ollama_proxy_prompt_cached_tokens_estimated_total``:
Ollama 0.33 reports none) against the servers' own (``cache_n``), and the hits the proxy's mirror
predicted against those the answers confirmed: by the proxy's own reckoning (from each answer's
``prompt_eval_duration``, all Ollama 0.33 tells), and by the servers' ``cache_n`` (each turn's estimate
from the access log, found by its ``X-Request-Id``).
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.scheduling.table import Target, print_scenario
from ollama_proxy.scheduler.decisions.hits import HitBook
from tests.e2e.chaos import metric_sum
from tests.e2e.conftest import SCRAPE
from tests.e2e.conversations import Conversation, Turn
from tests.e2e.ollama_on_llama import OllamaOnLlama
from tests.e2e.server import ProxyServer, start_server

THINK_SECONDS, STAGGER_SECONDS, NUM_PREDICT = 0.5, 0.2, 24
ROUND_ROBIN, STICKY, PROXY = "straight, round-robin", "straight, sticky", "proxy"
_ASKED = re.compile(r"(\S+) asks, turn (\d+):")


@dataclass(frozen=True)
class Case:
    people: int  # conversations side by side
    one_key: bool = False  # all through one key, else a key each
    shared_system: bool = False  # all open with one system text


CASES = {"3": Case(3), "3-one-key": Case(3, one_key=True), "5": Case(5), "5-one-key": Case(5, one_key=True),
         "2-shared": Case(2, shared_system=True), "3-shared": Case(3, shared_system=True)}


def main(seconds: float, system_tokens: int = 2050, turn_tokens: int = 200, turns: int = 4,
         cases: list[str] | None = None) -> list[Target]:
    """Run the ``cases`` named (all by default; ``seconds`` is the other scenarios' and unused: each run lasts as
    its turns do)."""
    held = []
    for name in cases or CASES:
        case = CASES[name]
        columns, figures = {}, {}
        for run in (ROUND_ROBIN, STICKY, PROXY):
            columns[run], figures[run] = _run(run, case, system_tokens, turn_tokens, turns)
        keys = "one key" if case.one_key else "a key each"
        text = "one system text shared by all" if case.shared_system else "a system text each"
        about = (f"{case.people} conversations ({keys}) opening with {text} of {system_tokens:,} tokens, growing "
                 f"by {turn_tokens} and the answer a turn, {turns} turns each; 2 llama-servers x 2 slots")
        held += print_scenario("conversations on the real engine", about, columns, _targets(figures))
    return held


def _run(run: str, case: Case, system_tokens: int, turn_tokens: int, turns: int) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory(prefix="ollama-proxy-real-") as workdir:
        engines = [OllamaOnLlama(Path(workdir) / f"llama{i}", num_parallel=2, threads=1).start() for i in range(2)]
        proxy = None
        try:
            if run == PROXY:
                proxy = _proxy(engines, Path(workdir) / "proxy")
            chats = [Conversation(f"person{i}", system_tokens, turn_tokens, case.shared_system)
                     for i in range(case.people)]
            send = _sender(run, engines, proxy, case.one_key)
            asked = _talk(chats, turns, send)
            if proxy is None:
                return _measure(engines, asked, None, None)
            hits = tuple(metric_sum(proxy.url, f"ollama_proxy_prompt_cache_{name}_total") for name in (
                "predicted_hits", "confirmed_hits", "predicted_tokens", "confirmed_tokens"))
            return _measure(engines, asked, metric_sum(proxy.url, "ollama_proxy_prompt_cached_tokens_estimated_total"),
                            hits, _estimates(proxy))
        finally:
            if proxy is not None:
                proxy.stop()
            for engine in engines:
                engine.stop()


def _proxy(engines: list[OllamaOnLlama], workdir: Path) -> ProxyServer:
    keys = [{"name": f"person{i}", "token": f"person{i}-token-0123456789"} for i in range(5)]
    slots = {"num_parallel": 2, "max_loaded_models": 1}
    config = {"auth": {"generate_tokens": keys}, "metrics": {"tokens": [{"name": "bench", "token": SCRAPE}]},
              "service": {"base_url": engines[0].url, "read_timeout": 600, **slots},
              "backends": [{"name": "gpu2", "type": "ollama", "base_url": engines[1].url, **slots}],
              "logging": {"dir": str(workdir / "logs")}}
    proxy = start_server(ProxyServer(config, workdir, workers=2))
    deadline = time.monotonic() + 30
    while not _knows_loaded(proxy) and time.monotonic() < deadline:
        time.sleep(0.2)  # until the proxy has read what each server runs
    return proxy


def _sender(run: str, engines: list[OllamaOnLlama], proxy: ProxyServer | None, one_key: bool):
    """Where each turn of a conversation goes, and with which token."""
    turn = itertools.cycle(engine.url for engine in engines)
    lock = threading.Lock()

    def send(chat: Conversation) -> tuple[str, str | None]:
        if run == PROXY:
            return proxy.url, "person0-token-0123456789" if one_key else f"{chat.who}-token-0123456789"
        if run == STICKY:
            return engines[int(chat.who.removeprefix("person")) % len(engines)].url, None
        with lock:
            return next(turn), None
    return send


def _talk(chats: list[Conversation], turns: int, send) -> list[Turn]:
    """Every conversation at once, each asking its next turn ``THINK_SECONDS`` after its answer."""
    asked: list[Turn] = []

    def talk(index: int, chat: Conversation) -> None:
        time.sleep(index * STAGGER_SECONDS)
        for _ in range(turns):
            asked.append(chat.talk(*send(chat), num_predict=NUM_PREDICT))
            time.sleep(THINK_SECONDS)
    threads = [threading.Thread(target=talk, args=(i, chat)) for i, chat in enumerate(chats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return asked


def _estimates(proxy: ProxyServer) -> dict[str, int]:
    """Each chat's cached tokens the mirror expected (the access log's ``cached_tokens_estimated``), by request id."""
    lines = (json.loads(line) for line in proxy.access_lines())
    return {line["request_id"]: line.get("cached_tokens_estimated") or 0 for line in lines
            if line.get("path") == "/api/chat"}


def _borne_out(asked: list[Turn], read: dict, estimates: dict[str, int]) -> tuple[int, int]:
    """The hits the mirror predicted, and how many of them the servers' own ``cache_n`` bore out: counted by the
    proxy's own book (``HitBook``), told what the servers read from cache instead of what the time says."""
    book = HitBook()
    for turn in asked:
        index, answered = read.get((turn.who, turn.number), (0, None))
        if answered is not None:
            book.note(str(index), "smollm2", answered.cached + answered.read, estimates.get(turn.request_id, 0),
                      answered.cached)
    reports = book.report()
    return sum(r["predicted"] for r in reports), sum(r["confirmed"] for r in reports)


def _measure(engines: list[OllamaOnLlama], asked: list[Turn], reported: float | None,
             hits: tuple[float, ...] | None, estimates: dict[str, int] | None = None) -> tuple[dict, dict]:
    read = {}
    for index, engine in enumerate(engines):
        for answered in engine.answers:
            found = _ASKED.match(answered.last)
            if found:
                read[(found.group(1), int(found.group(2)))] = (index, answered)
    later = [(index, answered) for (_, turn), (index, answered) in read.items() if turn > 0]
    reread = sum(answered.read for _, answered in later)
    whole = sum(answered.read + answered.cached for _, answered in later)
    first = sum(turn.first_token for turn in asked if turn.number > 0)
    at_server = sum(answered.first_token for _, answered in later)
    queued = [turn.queued for turn in asked]
    said = sum(answered.cached for _, answered in read.values())
    borne = _borne_out(asked, read, estimates or {})
    moved = sum(len({index for (who, _), (index, _) in read.items() if who == person}) - 1
                for person in {who for who, _ in read})
    column = {
        "servers, turn by turn": " ".join(str(read[key][0] + 1) for key in sorted(read, key=lambda k: (k[1], k[0]))),
        "conversations moved": str(moved),
        "tokens re-read on later turns": f"{reread:,} of {whole:,}",
        "first token, later turns (sum)": f"{first:.1f} s",
        "  of which at the servers (sum)": f"{at_server:.1f} s",
        "time in the proxy's queue (sum / max)": f"{sum(queued):.1f} / {max(queued):.1f} s",
        "cached tokens: proxy estimated / servers said": "-" if reported is None else f"{reported:,.0f} / {said:,}",
        "hits: confirmed / predicted": "-" if hits is None else f"{hits[1]:.0f} / {hits[0]:.0f}",
        "  the same by the servers' cache_n": "-" if estimates is None else "{1} / {0}".format(*borne),
        "hit tokens: confirmed / predicted": "-" if hits is None else f"{hits[3]:,.0f} / {hits[2]:,.0f}",
    }
    figures = {"reread": reread, "first": first, "queued": sum(queued), "reported": reported, "said": said,
               "predicted": borne[0], "borne out": borne[1]}
    return column, figures


def _targets(figures: dict[str, dict]) -> list[Target]:
    proxy, sticky = figures[PROXY], figures[STICKY]
    return [Target("tokens re-read on later turns <= 1.1 x sticky's", PROXY, proxy["reread"] / max(sticky["reread"], 1),
                   1.1),
            Target("first token on later turns <= sticky's + 10 %", PROXY, proxy["first"] / sticky["first"], 1.1),
            Target("cached tokens estimated within 10 % of the servers'", PROXY,
                   abs(proxy["reported"] - proxy["said"]) / max(proxy["said"], 1), 0.10, "%"),
            Target("predicted hits the servers' cache_n did not bear out = 0", PROXY,
                   proxy["predicted"] - proxy["borne out"], 0)]


def _knows_loaded(proxy: ProxyServer) -> bool:
    """Whether the proxy's scheduler has read a loaded model off the servers (its busy slots are shown)."""
    text = requests.get(proxy.url + "/metrics", headers={"Authorization": f"Bearer {SCRAPE}"}, timeout=10).text
    return "ollama_proxy_scheduler_slots_busy{" in text
