"""Keep the labels of ``/metrics`` in closed sets: nothing a client sends makes a new series.

prometheus_client keeps every series it is given for the life of the worker (and, under
gunicorn, in the worker's multiprocess file after it): a label read from the request as it
came (a made-up HTTP method, one more spelling of a model, a model that does not exist)
would let anyone grow ``/metrics`` by a series a request. So every label comes from a
closed set:

- ``method``: one of HTTP's standard methods (``METHODS``), else ``other``;
- ``endpoint``: the template of the URL rule that served the request, else ``unmatched``;
- ``model``: the canonical name (``names.canonical``) of a model that an Ollama server or a
  provider lists (a provider's as its listing names it, ``provider:model``), else ``other``:
  ``Llama3.2`` and ``registry.ollama.ai/library/llama3.2`` are both ``llama3.2:latest``;
- ``surface``, ``status``, ``kind``: the proxy's own values; ``server``, ``backend`` and
  ``class``: names from the configuration; ``key``: a key's name, with ``metrics.key_names``
  only. The end user a front end names is never a label.

What the backends list is what this worker knows of them without asking: the models the
pool last read from each server, and its own last read of every server's ``/api/tags`` and
every provider's models. That read is made in the background, at most once every
``routing.refresh_interval`` seconds, and only when a name not listed comes up; the counts of
a request for such a name wait for it, so a model pulled a moment ago gets its own label,
and made-up names cost one read an interval at most.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Iterable

from ollama_proxy.routing.names import canonical

# RFC 9110 §9 and PATCH (RFC 5789); Werkzeug and gunicorn pass any token on as a method.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER = "other"
MAX_WAITING = 1000  # counts held for a read under way; past it, one is counted as other at once

Count = Callable[[str], None]


def method_label(method: str) -> str:
    """Return the label of an HTTP method: itself when it is a standard one, else ``other``."""
    return method if method in METHODS else OTHER


def _in_background(read: Callable[[], None]) -> None:
    threading.Thread(target=read, name="metrics-model-labels", daemon=True).start()


class ModelLabels:
    """Map a model's name to its label: its canonical name when a backend lists it, else ``other``.

    ``known(name)`` tells, without I/O, whether a canonical name is listed by what the worker
    holds already; ``read()`` returns the names the backends list now (I/O), and is called in
    the background (``start``) at most once every ``interval`` seconds.
    """

    def __init__(self, known: Callable[[str], bool], read: Callable[[], Iterable[str]], interval: float,
                 providers: Collection[str] = (), clock: Callable[[], float] = time.monotonic,
                 start: Callable[[Callable[[], None]], None] = _in_background):
        self._known, self._read, self._interval = known, read, interval
        self._providers = frozenset(providers)
        self._clock, self._start = clock, start
        self._names: frozenset[str] = frozenset()  # canonical names, as last read
        self._read_at: float | None = None
        self._reader: int | None = None  # the process whose read is under way (a fork does not inherit it)
        self._waiting: list[tuple[str, Count]] = []
        self._lock = threading.Lock()

    def named(self, model: str | None, backend: str | None) -> str:
        """Return the name a listing gives the model a request was sent: ``provider:model`` for a provider's."""
        return f"{backend}:{model}" if model and backend in self._providers else model or ""

    def label(self, name: str) -> str:
        """Return the label of ``name`` from what is listed now; a name not listed asks for a read, when due."""
        found = self._listed(name)
        if found is not None:
            return found
        with self._lock:
            start = self._claim_read()
        if start:
            self._start(self._refresh)
        return OTHER

    def count(self, name: str, count: Count) -> None:
        """Call ``count(label)``: at once, or for a name not listed while a read is due or under way, after it."""
        found = self._listed(name)
        if found is not None:
            count(found)
            return
        with self._lock:
            start = self._claim_read()
            held = self._reader == os.getpid() and len(self._waiting) < MAX_WAITING
            if held:
                self._waiting.append((name, count))
        if start:
            self._start(self._refresh)
        if not held:
            count(OTHER)

    def _listed(self, name: str) -> str | None:
        wanted = canonical(name)
        return wanted if wanted and (wanted in self._names or self._known(wanted)) else None

    def _claim_read(self) -> bool:
        """Tell whether a read is due and none is under way, and if so, mark one under way (under the lock)."""
        now = self._clock()
        due = self._read_at is None or now - self._read_at >= self._interval
        if self._reader == os.getpid() or not due:
            return False
        self._read_at, self._reader = now, os.getpid()
        return True

    def _refresh(self) -> None:
        names = None
        try:
            names = frozenset(canonical(name) for name in self._read())
        finally:  # even a failed read hands back the counts it held
            with self._lock:
                if names is not None:
                    self._names = names
                waiting, self._waiting, self._reader = self._waiting, [], None
            for name, count in waiting:
                count(self._listed(name) or OTHER)
