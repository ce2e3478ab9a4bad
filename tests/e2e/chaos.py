"""What the chaos tests drive and check: people's traffic on every surface, and what each request became.

``Traffic`` runs clients in threads, each sending one request after another to the
proxies it is given, on the native API (streamed and whole), OpenAI's and
Anthropic's, some of them leaving at a random moment (waiting, or mid-answer).
Each request is recorded as it ended: its answer, a clean error in its surface's
shape, the client leaving, or a cut connection. The checks read those records, the
fake Ollama's own records (was a request ever sent beyond what a server runs?) and
the proxy's logs.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.e2e.conftest import GENERATE, SCRAPE, auth

SURFACES = ("native-stream", "native-whole", "openai-stream", "anthropic-stream")
ANSWER, ERROR, LEFT, CUT = "answer", "error", "left", "cut"


@dataclass
class Outcome:
    surface: str
    model: str
    started: float
    ended: float
    kind: str  # ANSWER, ERROR (clean, in the surface's shape), LEFT (the client hung up), CUT
    status: int = 0
    detail: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _request(url: str, surface: str, model: str, text: str) -> tuple[str, dict, dict]:
    if surface.startswith("native"):
        return (f"{url}/api/chat", {"model": model, "messages": [{"role": "user", "content": text}],
                                    "stream": surface == "native-stream"}, auth(GENERATE))
    if surface == "openai-stream":
        return (f"{url}/v1/chat/completions", {"model": model, "stream": True,
                                               "messages": [{"role": "user", "content": text}]}, auth(GENERATE))
    return (f"{url}/v1/messages", {"model": model, "max_tokens": 64, "stream": True,
                                   "messages": [{"role": "user", "content": text}]},
            {"x-api-key": GENERATE, "anthropic-version": "2023-06-01"})


def _error_shaped(surface: str, body: dict) -> bool:
    if surface.startswith("native"):
        return isinstance(body.get("error"), str)
    if surface == "openai-stream":
        return isinstance(body.get("error"), dict) and "message" in body["error"]
    return body.get("type") == "error" and "message" in body.get("error", {})


def _read_stream(surface: str, answer: requests.Response) -> tuple[str, str]:
    """Read a 200 stream to its end: (ANSWER or ERROR, detail); raise on a cut or a malformed frame."""
    last = None
    for line in answer.iter_lines():
        line = line.strip()
        if not line or line.startswith(b":") or line.startswith(b"event:"):
            continue
        if line.startswith(b"data:"):
            line = line[5:].strip()
            if line == b"[DONE]":
                continue
        last = json.loads(line)
        if _error_shaped(surface, last):
            return ERROR, json.dumps(last)[:200]
    done = last is not None and (last.get("done") is True or last.get("type") == "message_stop"
                                 or any(c.get("finish_reason") for c in last.get("choices", []) or []))
    if not done:
        raise ValueError(f"the stream ended without its end: {str(last)[:200]}")
    return ANSWER, ""


def ask(url: str, surface: str, model: str, text: str, timeout: float, leave_after: float | None = None) -> Outcome:
    """Send one request and record how it ended; with ``leave_after``, hang up that many seconds in."""
    target, body, headers = _request(url, surface, model, text)
    started = time.monotonic()
    session = requests.Session()
    outcome = Outcome(surface, model, started, started, CUT)
    timer = threading.Timer(leave_after, session.close) if leave_after is not None else None
    try:
        if timer is not None:
            timer.start()
        with session.post(target, json=body, headers=headers, timeout=timeout, stream=True) as answer:
            outcome.status = answer.status_code
            if answer.status_code != 200:
                shaped = _error_shaped(surface, answer.json())
                outcome.kind, outcome.detail = (ERROR if shaped else CUT), answer.text[:200]
            else:
                outcome.kind, outcome.detail = _read_stream(surface, answer)
    except (requests.RequestException, ValueError, AttributeError) as exc:
        outcome.kind = LEFT if timer is not None and not timer.is_alive() else CUT
        outcome.detail = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        if timer is not None:
            timer.cancel()
        session.close()
        outcome.ended = time.monotonic()
    return outcome


@dataclass
class Traffic:
    """Clients sending requests one after another until stopped; some leave at a random moment."""

    urls: list[str]
    models: list[str]
    clients: int = 6
    timeout: float = 30.0
    leave_rate: float = 0.15
    outcomes: list[Outcome] = field(default_factory=list)
    asking: dict[int, tuple[str, str, float]] = field(default_factory=dict)  # client -> what it asks, since when
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Traffic:
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _client(self, n: int) -> None:
        rng = random.Random(n)
        i = 0
        while not self._stop.is_set():
            leave = rng.uniform(0.05, 1.5) if rng.random() < self.leave_rate else None
            surface, model = SURFACES[(n + i) % len(SURFACES)], self.models[(n + i) % len(self.models)]
            self.asking[n] = (surface, model, time.monotonic())
            outcome = ask(self.urls[(n + i) % len(self.urls)], surface, model, f"client {n} asks {i}", self.timeout,
                          leave)
            self.outcomes.append(outcome)
            i += 1

    def stop(self, bound: float) -> list[Outcome]:
        """Stop sending; every client must be done within ``bound`` seconds (no request hangs)."""
        self._stop.set()
        deadline = time.monotonic() + bound
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        hung = [(n, self.asking.get(n)) for n, t in enumerate(self._threads) if t.is_alive()]
        assert not hung, f"clients still waiting {bound:g}s after the traffic stopped: {hung}"
        return self.outcomes


def assert_every_request_ended_well(outcomes: list[Outcome], bound: float, cuts_allowed_at=()) -> None:
    """Each request ended within ``bound`` seconds with its answer, a clean error, or its client leaving.

    A connection cut is allowed only for a request in flight at one of ``cuts_allowed_at`` (a worker
    killed under it: the kernel closes its connections).
    """
    assert outcomes, "no request was sent"
    slow = [o for o in outcomes if o.seconds > bound]
    assert not slow, f"{len(slow)} requests took over {bound:g}s: {slow[:3]}"
    cut = [o for o in outcomes if o.kind == CUT
           and not any(o.started <= at <= o.ended + 0.5 for at in cuts_allowed_at)]
    assert not cut, f"{len(cut)} requests were cut, not answered: {cut[:3]}"
    assert Counter(o.kind for o in outcomes)[ANSWER] >= len(outcomes) // 3, Counter(o.kind for o in outcomes)


def over_grants(fakes, grace: float = 0.3) -> list:
    """The requests that waited in a fake Ollama's own queue: each was sent beyond what the server runs.

    A request the proxy sends when a slot is free starts at once; one that waited longer
    than ``grace`` (a few milliseconds are the race between a stream's end and its slot's
    release) was sent while every slot was taken.
    """
    late = []
    for fake in fakes:
        for record in fake.scheduler.records():
            if not record.needs_slot:
                continue
            began = record.started_at if record.started_at is not None else (record.left_at or record.finished_at)
            if began is not None and began - record.queued_at > grace:
                late.append((fake.url, record.model, round(record.queued_at, 2), round(began - record.queued_at, 2),
                             record.state, _beside(fake, record)))
    return late


def _beside(fake, late) -> list[tuple]:
    """What the fake ran when ``late`` came, to tell why it waited: model, queued, started, ended, what it said."""
    return [(r.model, round(r.queued_at, 2), r.started_at and round(r.started_at, 2),
             round(r.finished_at or r.left_at or 0, 2), r.state, (_said(r) or "")[:24])
            for r in fake.scheduler.records()
            if r is not late and r.started_at is not None and r.started_at <= late.queued_at
            and (r.finished_at or r.left_at or float("inf")) > late.queued_at]


def _said(record) -> str | None:
    try:
        return record.origin.json["messages"][-1]["content"]
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def metrics_text(url: str) -> str:
    """The proxy's /metrics now, as a scraper reads it."""
    return requests.get(f"{url}/metrics", headers=auth(SCRAPE), timeout=10).text


def metric_sum(url: str, name: str) -> float:
    text = metrics_text(url)
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_VARYING = re.compile(r"\b[0-9a-f]{6,}\b|\d+(?:\.\d+)?")  # ids, counts, times: one line whatever they are


def repeated_lines(paths: list[Path], per_second: int = 6) -> list[tuple[str, int]]:
    """Log lines of one kind said more than ``per_second`` times in one second by one process.

    A line's kind is its text with its numbers and ids blanked, its process kept.
    """
    found = []
    for path in paths:
        counts: Counter = Counter()
        for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
            if _STAMP.match(line):
                process = re.search(r"\[(\d+)\]", line)
                counts[(line[:19], process and process.group(1), _VARYING.sub("N", line[24:])[:200])] += 1
        found += [(text, n) for (_, _, text), n in counts.items() if n > per_second]
    return found
