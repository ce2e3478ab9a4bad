"""Learn, model by model, how far the token estimate is from the tokens the model counts.

Every answer's final chunk carries ``prompt_eval_count``, the tokens Ollama
evaluated for the prompt the proxy sent, whose estimate the proxy made. Their
ratio, smoothed (the newest observation weighs ``smoothing``; the first is
taken whole), scales the text part of later estimates for that model: a
tokenizer with a larger vocabulary, a chat template with more or less frame
around each message. Images keep their flat cost, and a prompt with images
teaches nothing (their real cost is the model's own).

An observation is ignored when it cannot be a tokenizer's difference: a
prompt estimated below ``min_prompt_tokens`` (the template's fixed text
outweighs it), a count that fills the context (Ollama cut the prompt to fit),
or a ratio beyond ``max_correction`` either way.

The ratios live in the worker that learnt them: each worker learns from the
answers it relays, and they agree once each has seen a few.
"""

from __future__ import annotations

import math

from ollama_proxy.translate.anthropic.tokens import IMAGE_TOKENS, Estimate


def corrected(estimate: Estimate, ratio: float) -> int:
    """Return an estimate's tokens with its text part scaled by a learnt ratio."""
    # Rounded first, so that a ratio learnt from this very prompt gives back its count, not one more.
    return math.ceil(round(estimate.text_tokens * ratio, 6)) + IMAGE_TOKENS * estimate.images


def smoothed(previous: float | None, observed: float, smoothing: float) -> float:
    """Return a moving average's next value: the first observation stands alone."""
    return observed if previous is None else previous + smoothing * (observed - previous)


class TokenCorrection:
    """The learnt ratios of counted to estimated prompt tokens, one per model."""

    def __init__(self, smoothing: float = 0.2, min_prompt_tokens: int = 256, max_correction: float = 4.0):
        self.smoothing = smoothing
        self.min_prompt_tokens = min_prompt_tokens
        self.max_correction = max_correction
        self._ratios: dict[str, float] = {}

    def ratio(self, model: str) -> float:
        """Return the ratio learnt for a model; 1.0 before its first answer."""
        return self._ratios.get(model, 1.0)

    def observe(self, model: str, estimate: Estimate, counted: object, context: object = None) -> bool:
        """Learn from one answer's ``prompt_eval_count``; tell whether it was taken."""
        ratio = self._usable_ratio(estimate, counted, context)
        if ratio is None:
            return False
        self._ratios[model] = smoothed(self._ratios.get(model), ratio, self.smoothing)
        return True

    def _usable_ratio(self, estimate: Estimate, counted: object, context: object) -> float | None:
        if estimate.images:
            return None
        if not isinstance(counted, int) or isinstance(counted, bool) or counted <= 0:
            return None  # absent, or an old Ollama's 0 for a cached prompt
        if estimate.text_tokens < self.min_prompt_tokens:
            return None
        if isinstance(context, int) and not isinstance(context, bool) and counted >= context:
            return None
        ratio = counted / estimate.text_tokens
        bound = self.max_correction
        return ratio if 1 / bound <= ratio <= bound else None
