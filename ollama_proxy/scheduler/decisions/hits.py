"""What each server's answers say of the mirror's prompt cache: predicted hits, confirmed ones, and how far to trust it.

After every answer, Ollama says how long it took to read the prompt (``prompt_eval_duration``) and,
up to 0.33, nothing of what came from its cache (``prompt_eval_count`` counts every prompt token):
what was read again is estimated from that time at the server's learned prefill rate. An Ollama that
sends ``prompt_eval_cached_count`` (not yet released) is taken at its word. The mirror predicted a
number before the request was sent; per server and model, this keeps both, in Ollama's tokens, and
a reliability: the part of the predicted tokens the answers confirm, as a moving average. A server
that keeps answering below the mirror (its RAM cache smaller than said, another client using it)
is then trusted less when a prompt is placed.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import LRUCache

from ollama_proxy.scheduler.decisions.estimates import MODELS_KEPT, SMOOTHING

HIT = 0.5  # a prompt read at least this much from cache is a hit
CONFIRMED = 0.8  # a predicted hit is confirmed if the answer gives at least this part of the predicted tokens


@dataclass
class Hits:
    """One server's and model's predictions and what its answers said."""

    predicted: int = 0  # requests the mirror expected to read most of their prompt from cache
    confirmed: int = 0  # of those, the ones whose answer bore it out
    surprises: int = 0  # requests the mirror expected to read most of their prompt again that did not
    predicted_tokens: int = 0  # tokens the mirror expected from cache, in Ollama's tokens
    confirmed_tokens: int = 0  # tokens the answers said came from cache
    reliability: float = 1.0  # the part of predicted tokens answers confirm, as a moving average

    def as_dict(self) -> dict:
        return {"predicted": self.predicted, "confirmed": self.confirmed, "surprises": self.surprises,
                "predicted_tokens": self.predicted_tokens, "confirmed_tokens": self.confirmed_tokens,
                "reliability": round(self.reliability, 3)}


class HitBook:
    """The hits of every server and model (the least recently reported forgotten past ``MODELS_KEPT``)."""

    def __init__(self) -> None:
        self._hits: LRUCache[tuple[str, str], Hits] = LRUCache(MODELS_KEPT)

    def reliability(self, server: str, model: str) -> float:
        hits = self._hits.get((server, model))
        return 1.0 if hits is None else hits.reliability

    def note(self, server: str, model: str, prompt: int, predicted: int, cached: int) -> bool:
        """Note one answer: ``prompt`` tokens, ``predicted`` of them expected from cache, ``cached`` said so.

        Return whether it was a predicted hit the answer did not bear out: the mirror's picture was wrong.
        """
        hits = self._hits.get((server, model))
        if hits is None:
            hits = self._hits[(server, model)] = Hits()
        hits.predicted_tokens += predicted
        hits.confirmed_tokens += min(cached, predicted)
        if predicted:
            hits.reliability += SMOOTHING * (min(1.0, cached / predicted) - hits.reliability)
        if predicted < HIT * prompt:
            hits.surprises += cached >= HIT * prompt
            return False
        hits.predicted += 1
        confirmed = cached >= CONFIRMED * predicted
        hits.confirmed += confirmed
        return not confirmed

    def report(self) -> list[dict]:
        """Every server's and model's figures, as plain data."""
        return [{"server": server, "model": model, **hits.as_dict()}
                for (server, model), hits in sorted(self._hits.items())]
