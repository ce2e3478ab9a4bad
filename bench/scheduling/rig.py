"""What one run of a scenario talks to: fake GPU servers, straight or behind the real proxy.

Each fake runs in a process of its own (apart.py), so its work does not slow the clients that time it; its
records keep the benchmark's clock, ``time.monotonic``, which every process shares. Through the proxy
(gunicorn, two gevent workers, the embedded scheduler), people come with tokens from the
configuration file and a job with a managed key of its class (``ollama-proxy keys create``).
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.scheduling.apart import FakeApart
from tests.e2e.command import create_key
from tests.e2e.server import ProxyServer, start_server
from tests.fakes.ollama_runner import RequestRecord

MODEL_SCRIPT = "llama3.2"
PROXY_WORKERS = 2


@dataclass(frozen=True)
class Servers:
    """The fake GPU servers of a scenario, all alike."""

    count: int = 2
    num_parallel: int = 2
    max_loaded_models: int = 1
    token_seconds: float = 0.02
    load_seconds: float = 0.0
    prompt_token_seconds: float | None = None  # given: the servers keep prompt caches, as Ollama's llama-server does
    ram_tokens: int | None = None  # ... with a RAM prompt cache this many tokens long (None: no limit)
    num_ctx: int = 4096  # a slot's context (OLLAMA_CONTEXT_LENGTH): Ollama cuts a longer prompt to fit

    @property
    def slots(self) -> int:
        return self.count * self.num_parallel


@dataclass
class Rig:
    """The fakes, where clients send (the fakes in turn, or the proxy) and each principal's token."""

    fakes: list[FakeApart]
    urls: list[str]
    tokens: dict[str, str] = field(default_factory=dict)
    proxy: ProxyServer | None = None
    sticky: bool = False  # each principal always to the server it was first sent to

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(self.urls)
        self._home: dict[str, str] = {}

    def url(self, principal: str | None = None) -> str:
        """Return where the next request goes: round-robin over the servers, as a client spreads load, or,
        sticky, the server ``principal`` was first sent to (the principals spread in turn)."""
        if self.sticky and principal is not None:
            return self._home.setdefault(principal, next(self._turn))
        return next(self._turn)

    def token(self, principal: str) -> str | None:
        return self.tokens.get(principal)

    def records(self) -> dict[str, list[RequestRecord]]:
        """Return the fakes' request records by the label of the question each ran, over every fake."""
        found: dict[str, list[RequestRecord]] = {}
        for fake in self.fakes:
            for label, record in fake.records():
                if label is not None:
                    found.setdefault(label, []).append(record)
        return found

    def server_of(self, label: str) -> int | None:
        """Return the index of the fake that ran the labelled question, if one did."""
        for index, fake in enumerate(self.fakes):
            if any(their == label and r.started_at is not None for their, r in fake.records()):
                return index
        return None


@contextmanager
def rig(servers: Servers, *, via_proxy: bool, people: tuple[str, ...] = (), jobs: dict[str, str] | None = None,
        scheduling: dict | None = None, sticky: bool = False, **script) -> Iterator[Rig]:
    """Start the fakes, and the proxy in front of them if via_proxy; stop them all at the end.

    people get file tokens; jobs (principal -> class) get managed keys of that class; sticky: straight, each
    principal to one server; script: more of how the fakes answer (``Behavior``).
    """
    settings = {"num_parallel": servers.num_parallel, "max_loaded_models": servers.max_loaded_models}
    caches = {}
    if servers.prompt_token_seconds is not None:
        caches = {"prompt_cache": True, "prompt_token_seconds": servers.prompt_token_seconds,
                  "prompt_cache_tokens": servers.ram_tokens}
    fake_settings = {"load_seconds": servers.load_seconds, "num_parallel": servers.num_parallel,
                     "max_loaded_models": servers.max_loaded_models, "default_num_ctx": servers.num_ctx, **caches}
    fakes: list[FakeApart] = []
    try:
        fakes += [FakeApart(fake_settings, MODEL_SCRIPT, {"chunk_delay": servers.token_seconds, **script})
                  for _ in range(servers.count)]
        if not via_proxy:
            yield Rig(fakes, [fake.url for fake in fakes], sticky=sticky)
            return
        with tempfile.TemporaryDirectory(prefix="ollama-proxy-sched-") as workdir:
            tokens = {name: f"{name}-token-0123456789" for name in people}
            config = {"auth": {"generate_tokens": [{"name": name, "token": t} for name, t in tokens.items()]},
                      "service": {"base_url": fakes[0].url, "read_timeout": 600, **settings},
                      "backends": [{"name": f"gpu{i + 1}", "type": "ollama", "base_url": fake.url, **settings}
                                   for i, fake in enumerate(fakes[1:], start=1)],
                      "scheduling": {"max_queued_per_principal": 64, **(scheduling or {})},
                      "logging": {"dir": str(Path(workdir) / "logs")}}
            proxy = start_server(ProxyServer(config, Path(workdir), workers=PROXY_WORKERS))
            try:
                for name, kind in (jobs or {}).items():
                    tokens[name] = create_key(proxy, "--name", name, "--class", kind)
                yield Rig(fakes, [proxy.url], tokens, proxy)
            finally:
                proxy.stop()
    finally:
        for fake in fakes:
            fake.stop()
