"""Say how many input tokens an Anthropic answer reports: counted, estimated, or scaled.

A Messages answer's input is Ollama's ``prompt_eval_count``: ``input_tokens``, less
what ``prompt_eval_cached_count`` says was read from cache, ``cache_read_input_tokens`` (left
out where Ollama does not say, as no release up to 0.33 does). Where
there is none yet (a stream's ``message_start``: Ollama counts only in its final
chunk) or none at all, it is the estimate, corrected by the ratio learnt for
the model. With ``report_context``, every figure (``count_tokens`` too) is
scaled by ``report_context / num_ctx``: the context window the client assumes
over the one the model runs with, so that the client compacts its conversation
in time. Only what the client reads changes: the proxy's own records keep the
real counts, taken from Ollama's chunks before this translation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ollama_proxy.translate.anthropic.correction import corrected
from ollama_proxy.translate.anthropic.tokens import Estimate
from ollama_proxy.translate.ollama import cached_prompt_tokens

Event = tuple[str, dict]


def context_scale(report_context: int | None, num_ctx: Any) -> float:
    """Return the factor input tokens are reported by: 1.0 unless both windows are known."""
    if not report_context or not isinstance(num_ctx, int) or isinstance(num_ctx, bool) or num_ctx <= 0:
        return 1.0
    return report_context / num_ctx


def requested_context(body: dict) -> dict:
    """Return the ``options`` an Anthropic body asks ``num_ctx`` in, as the translation reads them."""
    options = body.get("options")
    num_ctx = body.get("num_ctx")
    if num_ctx is None and isinstance(options, dict):
        num_ctx = options.get("num_ctx")
    return {} if num_ctx is None else {"num_ctx": num_ctx}


@dataclass(frozen=True)
class InputUsage:
    """The input tokens of one request as its answers report them."""

    estimate: Estimate
    ratio: float = 1.0  # learnt for the model: counted / estimated
    scale: float = 1.0  # report_context / num_ctx, or 1.0
    learn: Callable[[object], None] | None = None  # handed each answer's prompt_eval_count

    def estimated(self) -> int:
        """Return the corrected estimate, as reported."""
        return self._scaled(corrected(self.estimate, self.ratio))

    def reported(self, counted: object) -> int:
        """Return Ollama's count as reported, or the estimate when it counted nothing."""
        return self._scaled(counted) if _counted(counted) else self.estimated()

    def input_figures(self, answer: dict | None) -> dict:
        """The input figures of an answer's usage: its prompt tokens as reported, less those read from cache,
        which are told apart where Ollama counted them (none before the answer's end)."""
        counted = answer.get("prompt_eval_count") if answer is not None else None
        total = self.reported(counted)
        cached = cached_prompt_tokens(answer) if _counted(counted) else None
        if cached is None:
            return {"input_tokens": total}
        cached = min(total, self._scaled(cached))
        return {"input_tokens": total - cached, "cache_read_input_tokens": cached}

    def message(self, message: dict, answer: dict) -> dict:
        """Return a whole Message with its input figures reported, learning from the answer."""
        self.learn_from(answer)
        return {**message, "usage": {**message["usage"], **self.input_figures(answer)}}

    def stream(self, converter) -> ReportingConverter:
        return ReportingConverter(converter, self)

    def learn_from(self, answer: dict) -> None:
        """Hand the learner an answer's ``prompt_eval_count``."""
        if self.learn is not None:
            self.learn(answer.get("prompt_eval_count"))

    def _scaled(self, tokens: int) -> int:
        return tokens if self.scale == 1.0 else round(tokens * self.scale)


class ReportingConverter:
    """A Messages stream converter whose events report input tokens as an ``InputUsage`` says.

    ``message_start`` carries the estimate (Ollama counts only at the end),
    ``message_delta`` the count; the ``done`` chunk is learnt from.
    """

    def __init__(self, converter, usage: InputUsage):
        self.converter = converter
        self.usage = usage
        self.finished = converter.finished  # kept in step: read after every chunk, an attribute costs no call

    def process(self, chunk: dict) -> list[Event]:
        if chunk.get("done") and not self.converter.finished:
            self.usage.learn_from(chunk)
        events = self.converter.process(chunk)
        self.finished = self.converter.finished
        return self._reported(events, chunk)

    def ping(self) -> list[Event]:
        return self._reported(self.converter.ping(), None)

    def error(self, message: str) -> list[Event]:
        events = self.converter.error(message)
        self.finished = self.converter.finished
        return events

    fail = error

    def close(self) -> list[Event]:
        events = self.converter.close()
        self.finished = self.converter.finished
        return events

    def _reported(self, events: list[Event], chunk: dict | None) -> list[Event]:
        return [self._event(name, data, chunk) for name, data in events]

    def _event(self, name: str, data: dict, chunk: dict | None) -> Event:
        if name == "message_start":
            message = data["message"]
            usage = {**message["usage"], **self.usage.input_figures(chunk)}
            return name, {**data, "message": {**message, "usage": usage}}
        if name == "message_delta":
            return name, {**data, "usage": {**data["usage"], **self.usage.input_figures(chunk)}}
        return name, data


def _counted(counted: object) -> bool:
    return isinstance(counted, int) and not isinstance(counted, bool) and counted > 0
