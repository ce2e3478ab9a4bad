"""Limit each principal's requests and tokens per minute, and each team's.

A principal with ``rpm`` is admitted while its window holds fewer requests than
that; one with ``tpm`` while its window's token count is under the limit, and
a request's tokens (prompt + completion) are charged when its response closes,
so a long stream counts in full once it ends. Windows are fixed, one minute
long, starting at a principal's first counted request. A key of a team with
limits is also admitted only while its team's windows, which all the team's
keys share, have room; its tokens are charged to both. Windows are counted by
the principal's and the team's stable id (``Principal.id``, ``team_ref``: a
stored key's or team's row, a file token's name), not by the name: a key or
team deleted and made again under its name starts with windows of its own.

The counters live in a ``limits`` storage named by ``ratelimit.storage_url``:
a SQLite file (the default) is shared by every worker of one instance; Redis
is shared by several instances. Either way one increment is one atomic
operation, so concurrent workers admit exactly the limit. A storage outage
does not stop traffic: the request is admitted and a warning logged.

Answers to a limited principal carry OpenAI's headers:
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from flask import Flask, current_app
from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from ollama_proxy import ledger
from ollama_proxy.access.auth import Principal
from ollama_proxy.access.ratelimit import sqlite  # registers the sqlite:// scheme with limits
from ollama_proxy.config import RateLimitSettings
from ollama_proxy.errors import RateLimited
from ollama_proxy.ledger import RequestRecord, current_caller, current_record

log = logging.getLogger(__name__)
EXTENSION = "ollama_proxy.access.ratelimit"


@dataclass(frozen=True)
class Window:
    """One limit as a client sees it: the limit, what is left, seconds until it resets."""

    kind: str  # "requests" or "tokens"
    limit: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        return {f"x-ratelimit-limit-{self.kind}": str(self.limit),
                f"x-ratelimit-remaining-{self.kind}": str(self.remaining),
                f"x-ratelimit-reset-{self.kind}": duration(self.reset)}


def duration(seconds: float) -> str:
    """Write ``seconds`` as OpenAI's reset headers do: ``250ms``, ``7s``, ``1m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def _storage_options(url: str, timeout: float) -> dict:
    if url.startswith("sqlite:"):
        return {"busy_timeout": timeout}
    if url.startswith(("redis:", "rediss:")):
        return {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    return {}


class RateLimiter:
    """Admit or refuse a principal's requests and charge its tokens, on shared counters."""

    def __init__(self, settings: RateLimitSettings):
        options = _storage_options(settings.storage_url, settings.storage_timeout)
        self.storage = storage_from_string(settings.storage_url, wrap_exceptions=True, **options)
        if isinstance(self.storage, sqlite.SQLiteStorage):
            self.storage.prepare()
        self.strategy = FixedWindowRateLimiter(self.storage)
        # principal id -> the holders its tokens are charged to (itself, its team), as last seen by this worker
        self.charged_to: dict[str, tuple[Holder, ...]] = {}

    def _window(self, kind: str, item, holder: str, space: str = "") -> Window:
        stats = self.strategy.get_window_stats(item, space + kind, holder)
        return Window(kind, item.amount, stats.remaining, max(0.0, stats.reset_time - time.time()))

    def admit(self, principal: Principal) -> tuple[list[Window], RateLimited | None]:
        """Count one request of ``principal`` (and of its team); return the windows and the refusal, if any."""
        holders = [holder for holder in limited(principal) if holder.rpm is not None or holder.tpm is not None]
        windows, refusal = [], None
        for holder in holders:
            if holder.tpm is not None and refusal is None:
                tokens = RateLimitItemPerMinute(holder.tpm)
                windows.append(self._window("tokens", tokens, holder.id, holder.space))
                if not self.strategy.test(tokens, holder.space + "tokens", holder.id):
                    refusal = RateLimited(f"{holder.said} used its {holder.tpm} tokens per minute",
                                          retry_after=windows[-1].reset, code="rate_limit_exceeded")
        counted = [(holder, RateLimitItemPerMinute(holder.rpm)) for holder in holders if holder.rpm is not None]
        full = self._full_request_window(counted) if refusal is None else None  # refused: counted in none
        for holder, item in counted:
            window = self._window("requests", item, holder.id, holder.space)
            windows.insert(0, window)
            if holder is full:
                refusal = RateLimited(f"{holder.said} sent its {holder.rpm} requests per minute",
                                      retry_after=window.reset, code="rate_limit_exceeded")
        return windows, refusal

    def _full_request_window(self, counted: list[tuple[Holder, RateLimitItemPerMinute]]) -> Holder | None:
        """Count a request in each request window, unless one is full: return that one, and count it in none.

        Every window is read before any counts, so a team's full window does not use up its keys' own. The
        count stays the gate: another worker may have taken a window's last request since it was read.
        """
        for holder, item in counted:
            if not self.strategy.test(item, holder.space + "requests", holder.id):
                return holder
        for holder, item in counted:
            if not self.strategy.hit(item, holder.space + "requests", holder.id):
                return holder
        return None

    def charge(self, holder: str, tpm: int, tokens: int, space: str = "") -> None:
        """Count ``tokens`` against the tokens-per-minute window of ``holder``, an id (a team's: ``space`` "team ")."""
        if tokens > 0:
            self.strategy.hit(RateLimitItemPerMinute(tpm), space + "tokens", holder, cost=tokens)

    def charge_record(self, record: RequestRecord) -> None:
        """Charge a finished request's prompt and completion tokens to its principal and team (a close listener).

        Charged at once, not queued: the next request's admission must see these
        tokens, or a burst would slip past the limit. It is one counter increment
        each, made after the answer has gone out.
        """
        holders = self.charged_to.get(record.principal_id or "", ())
        tokens = (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        for holder in holders:
            try:
                self.charge(holder.id, holder.tpm, tokens, holder.space)
            except StorageError as exc:
                log.warning("rate-limit storage failed, %d tokens of %s not counted: %s", tokens, holder.said, exc)


@dataclass(frozen=True)
class Holder:
    """Who a limit belongs to: a principal, or a team (counted in a space of its own, ``"team "``).

    Counted by ``id`` (``Principal.id``, ``team_ref``), named by ``name`` in what people read.
    """

    id: str
    name: str
    rpm: int | None
    tpm: int | None
    space: str = ""

    @property
    def said(self) -> str:
        return f"team '{self.name}'" if self.space else f"'{self.name}'"


def limited(principal: Principal) -> list[Holder]:
    """The principal's own limits, then its team's."""
    holders = [Holder(principal.id, principal.name, principal.rpm, principal.tpm)]
    if principal.team is not None:
        holders.append(Holder(principal.team_ref, principal.team, principal.team_rpm, principal.team_tpm, "team "))
    return holders


def limit_request() -> None:
    """Admit the request's principal or refuse it with a 429 (before the view runs)."""
    principal: Principal | None = current_caller()
    if principal is None:
        return
    holders = [h for h in limited(principal) if h.rpm is not None or h.tpm is not None]
    if not holders:
        return
    limiter: RateLimiter = current_app.extensions[EXTENSION]
    limiter.charged_to[principal.id] = tuple(h for h in holders if h.tpm is not None)
    try:
        windows, refusal = limiter.admit(principal)
    except StorageError as exc:
        log.warning("rate-limit storage failed, request admitted unlimited: %s", exc)
        return
    current_record().rate_windows = windows
    if refusal is not None:
        raise refusal


def add_headers(response):
    """Tell a limited principal where it stands, on every answer, 429s included: per kind, the tightest window."""
    tightest: dict[str, Window] = {}
    record = current_record()
    for window in record.rate_windows if record is not None else ():
        if window.kind not in tightest or window.remaining < tightest[window.kind].remaining:
            tightest[window.kind] = window
    for window in tightest.values():
        response.headers.update(window.headers())
    return response


def init_app(app: Flask) -> None:
    """Limit requests after auth has named the principal; runs after ``auth.init_app``."""
    limiter = app.extensions[EXTENSION] = RateLimiter(app.config["SETTINGS"].ratelimit)
    app.before_request(limit_request)
    app.after_request(add_headers)
    ledger.add_close_listener(app, limiter.charge_record)

