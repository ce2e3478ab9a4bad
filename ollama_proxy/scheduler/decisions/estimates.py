"""Learn how long things take: a request's slot-time per model (and per principal), a model's load time per server.

All are moving averages of what the proxy saw: slot-time from each request's
start to its end, load time from the ``load_duration`` Ollama reports in a
final chunk, the rate a server reads prompts at from the tokens it read again
(a whole prompt the mirror expected read whole, or ``prompt_eval_count`` less an
Ollama's ``prompt_eval_cached_count``, where one sends it) and
``prompt_eval_duration``, how long a principal's requests hold their slots beyond
that reading (answering), and how many of Ollama's tokens the proxy's estimate of a prompt
stands for. Until a first observation the defaults stand in; a principal's
slot-time for a model, until it has had one request end, is the model's. The drain rate
(requests ended per second, per model) gives waiting clients a ``Retry-After``.

A client names the model, and may name any: what is kept per model is bounded
(``MODELS_KEPT``, the least recently used forgotten first), as per model and server.
"""

from __future__ import annotations

from collections import deque

from cachetools import LRUCache

SMOOTHING = 0.2  # weight of the newest observation
DRAIN_WINDOW = 60.0  # seconds of request ends the drain rate is measured over
MIN_PREFILL_TOKENS = 64  # fewer tokens read say more about the overhead than about the rate
PRINCIPALS_KEPT = 10_000  # (model, principal) slot-times remembered; the longest unseen is forgotten first
MODELS_KEPT = 1_000  # models (and models on a server) whose times are remembered


class Estimates:
    def __init__(self, default_slot_seconds: float = 5.0, default_load_seconds: float = 10.0,
                 default_prefill_rate: float = 1000.0) -> None:
        self._slot: LRUCache[str, float] = LRUCache(MODELS_KEPT)
        self._prefill_rate: LRUCache[tuple[str, str], float] = LRUCache(MODELS_KEPT)
        self._scale: LRUCache[str, float] = LRUCache(MODELS_KEPT)  # Ollama's tokens per estimated token
        # Seconds a principal's requests for a model hold their slots answering, beyond their prompts' reading.
        self._generation: LRUCache[tuple[str, str], float] = LRUCache(PRINCIPALS_KEPT)
        self._slot_of: dict[tuple[str, str], float] = {}
        self._load: LRUCache[tuple[str, str], float] = LRUCache(MODELS_KEPT)
        self._ends: LRUCache[str, deque[float]] = LRUCache(MODELS_KEPT)
        self.default_slot_seconds = default_slot_seconds
        self.default_load_seconds = default_load_seconds
        self.default_prefill_rate = default_prefill_rate

    def slot_seconds(self, model: str, principal: str | None = None) -> float:
        """How long a request for ``model`` (from ``principal``, if given) is expected to hold its slot."""
        if principal is not None and (known := self._slot_of.get((model, principal))) is not None:
            return known
        return self._slot.get(model, self.default_slot_seconds)

    def own_slot_seconds(self, model: str, principal: str) -> float | None:
        """How long ``principal``'s requests for ``model`` have held their slots; None before one ended."""
        return self._slot_of.get((model, principal))

    def load_seconds(self, model: str, server: str) -> float:
        known = self._load.get((model, server))
        if known is not None:
            return known
        elsewhere = [v for (m, _), v in self._load.items() if m == model]
        return sum(elsewhere) / len(elsewhere) if elsewhere else self.default_load_seconds

    def ended(self, model: str, slot_seconds: float, now: float, principal: str | None = None,
              count: int = 1) -> None:
        """``count`` requests for ``model`` ended now, having held their slots ``slot_seconds`` each (on average)."""
        self._slot[model] = _smoothed(self._slot.get(model), slot_seconds, count)
        if principal is not None:
            key = (model, principal)
            self._slot_of[key] = _smoothed(self._slot_of.pop(key, None), slot_seconds, count)
            if len(self._slot_of) > PRINCIPALS_KEPT:
                del self._slot_of[next(iter(self._slot_of))]
        ends = self._ends.get(model)
        if ends is None:
            ends = self._ends[model] = deque()
        ends.extend([now] * count)
        while ends and ends[0] < now - DRAIN_WINDOW:
            ends.popleft()

    def prefill_seconds(self, model: str, server: str, tokens: float) -> float:
        """How long ``server`` takes to read ``tokens`` prompt tokens of ``model``, as the proxy estimates them."""
        return tokens * self.scale(model) / self.prefill_rate(model, server)

    def reread(self, model: str, server: str, seconds: float) -> int | None:
        """The tokens ``server`` reads in ``seconds``, in Ollama's tokens; None until its rate is known."""
        known = (model, server) in self._prefill_rate or any(m == model for m, _ in self._prefill_rate)
        return round(seconds * self.prefill_rate(model, server)) if known else None

    def prefill_rate(self, model: str, server: str) -> float:
        """Tokens a second ``server`` reads prompts of ``model`` at (a rate seen on another server stands in)."""
        rate = self._prefill_rate.get((model, server))
        if rate is None:
            elsewhere = [v for (m, _), v in self._prefill_rate.items() if m == model]
            rate = sum(elsewhere) / len(elsewhere) if elsewhere else self.default_prefill_rate
        return rate

    def prefilled(self, model: str, server: str, tokens: int, seconds: float) -> None:
        """Ollama read ``tokens`` prompt tokens again (none of them from cache) in ``seconds``."""
        if tokens >= MIN_PREFILL_TOKENS and seconds > 0:
            self._prefill_rate[(model, server)] = _smoothed(self._prefill_rate.get((model, server)), tokens / seconds)

    def generation_seconds(self, model: str, principal: str) -> float | None:
        """How long ``principal``'s requests for ``model`` hold their slots beyond reading their prompts.

        Learned per principal, never per model alone: one model serves a batch job's long answers and people's
        short ones, and their average fits neither. None until one of the principal's answers said.
        """
        return self._generation.get((model, principal))

    def generated(self, model: str, principal: str, seconds: float) -> None:
        """A request of ``principal`` for ``model`` held its slot ``seconds`` beyond the reading of its prompt."""
        key = (model, principal)
        self._generation[key] = _smoothed(self._generation.get(key), max(0.0, seconds))

    def scale(self, model: str) -> float:
        """How many of Ollama's tokens one of the proxy's estimated prompt tokens stands for."""
        return self._scale.get(model, 1.0)

    def counted(self, model: str, estimated: int, counted: int) -> None:
        """A prompt the proxy estimated at ``estimated`` tokens was ``counted`` by Ollama."""
        if estimated >= MIN_PREFILL_TOKENS and counted > 0:
            self._scale[model] = _smoothed(self._scale.get(model), counted / estimated)

    def loaded(self, model: str, server: str, load_seconds: float) -> None:
        self._load[(model, server)] = _smoothed(self._load.get((model, server)), load_seconds)

    def drain_rate(self, model: str, now: float) -> float:
        """Requests for ``model`` ended per second over the last minute (0.0: none seen)."""
        ends = [t for t in self._ends.get(model, ()) if t >= now - DRAIN_WINDOW]
        if len(ends) < 2:
            return 0.0
        return len(ends) / max(now - ends[0], 1.0)


def _smoothed(previous: float | None, observed: float, count: int = 1) -> float:
    """The moving average after ``count`` observations of ``observed``."""
    if previous is None:
        return observed
    weight = SMOOTHING if count == 1 else 1 - (1 - SMOOTHING) ** count
    return previous + weight * (observed - previous)
