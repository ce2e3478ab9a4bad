"""Learn, per model, what Ollama's answers count: a prompt the proxy estimated, and the pace it generates at (pure).

A request Ollama stopped before its final chunk (its client left, it was cut) never
says how many tokens its prompt had, nor, read whole, how many it generated: it is
charged the proxy's figures. The proxy's prompt estimate is a placement chain's
count (four characters a token, and a few per message); Ollama's tokenizer and chat
template read another number. Each answer that did report says by how much, for
its prompt's size: a short prompt is mostly the template's fixed text, a long one
mostly its characters, so the ratio is kept per size class (powers of two) and the
nearest class learned stands in. The pace is ``eval_count`` over ``eval_duration``,
and the reading ``prompt_eval_duration`` over ``prompt_eval_count``.
"""

from __future__ import annotations

from cachetools import LRUCache

MODELS_KEPT = 1_000  # models whose counts are remembered; the least recently answered is forgotten first
SMOOTHING = 0.2  # weight of the newest answer (the first counts whole)
MAX_RATIO = 8.0  # an answer further off either way (a prompt cut to its context) teaches nothing


class AnswerCounts:
    """What one worker learned of each model's answers."""

    def __init__(self) -> None:
        self._ratios: LRUCache[str, dict[int, float]] = LRUCache(MODELS_KEPT)  # size class -> Ollama's per ours
        self._pace: LRUCache[str, tuple[float, float]] = LRUCache(MODELS_KEPT)  # (s a prompt token, tokens a s)

    def answered(self, model: str, estimated: int, answer: dict) -> None:
        """Learn from an answer's final figures (``prompt_eval_count`` …) for a prompt estimated at ``estimated``."""
        counted = _count(answer.get("prompt_eval_count"))
        if estimated > 0 and counted and 1 / MAX_RATIO <= counted / estimated <= MAX_RATIO:
            ratios = self._ratios.get(model)
            if ratios is None:
                ratios = self._ratios[model] = {}
            size = estimated.bit_length()
            ratios[size] = _smoothed(ratios.get(size), counted / estimated)
        generated, generating = _count(answer.get("eval_count")), _count(answer.get("eval_duration"))
        if generated and generating:
            reading = _count(answer.get("prompt_eval_duration"))
            per_prompt_token = reading / 1e9 / counted if counted and reading else 0.0
            before = self._pace.get(model)
            self._pace[model] = (_smoothed(before and before[0], per_prompt_token),
                                 _smoothed(before and before[1], generated / (generating / 1e9)))

    def prompt(self, model: str, estimated: int) -> int:
        """The tokens Ollama would count of a prompt estimated at ``estimated`` (the estimate, until it said)."""
        ratios = self._ratios.get(model)
        if not ratios or estimated <= 0:
            return estimated
        size = estimated.bit_length()
        nearest = min(ratios, key=lambda known: (abs(known - size), -known))
        return max(1, round(estimated * ratios[nearest]))

    def generated(self, model: str, seconds: float, prompt: int) -> int:
        """The tokens a request for ``model`` generated in ``seconds`` of its slot, ``prompt`` tokens read first
        (0 until one of its answers said its pace)."""
        pace = self._pace.get(model)
        if pace is None:
            return 0
        per_prompt_token, per_second = pace
        return max(0, round((seconds - prompt * per_prompt_token) * per_second))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _smoothed(before: float | None, value: float) -> float:
    return value if before is None else (1 - SMOOTHING) * before + SMOOTHING * value
