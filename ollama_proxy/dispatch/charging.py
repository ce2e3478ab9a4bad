"""What a send of GPU work is charged where Ollama never says: its prompt as Ollama would read it, what it generated.

An answer's final chunk carries Ollama's counts; a request stopped before it (its
client left, it was cut) is charged the proxy's figures (``ledger.Hold``). Its
prompt is the placement chain's count (estimated when placement made none, off the
event loop for a large body), as the model's earlier answers say Ollama counts such
a prompt (``answer_counts``), and never more than the context it is read into, as
Ollama truncates it there. A whole answer (``stream: false``) left that way sent no
token: what it generated is its slot time, less its prompt's reading, at the
model's pace.
"""

from __future__ import annotations

from collections.abc import Callable

from ollama_proxy.dispatch.answer_counts import AnswerCounts
from ollama_proxy.dispatch.body import OllamaBody
from ollama_proxy.greenlets import OFF_LOOP_BYTES, off_loop
from ollama_proxy.observability.accounting import prompt_estimate
from ollama_proxy.scheduler.decisions.prefix import prompt_tokens

EMBEDDING_PATHS = ("/api/embed", "/api/embeddings")  # their texts are counted alone: no template to learn
LEARNT_PATHS = ("/api/chat", "/api/generate")


class PromptCharge:
    """One send's prompt and generation as charged where Ollama does not count them (see the module)."""

    def __init__(self, path: str, body, model: str, chain: tuple, context: int, counts: AnswerCounts):
        self.path = path
        self._body = body
        self._data = body.data if isinstance(body, OllamaBody) else {}
        self.model = model
        self._chain = chain
        self.context = context
        self._counts = counts
        self._estimate: int | None = None

    @property
    def whole(self) -> bool:
        """Whether Ollama answers it whole: nothing comes, nor is counted, before its end."""
        return self.path in LEARNT_PATHS and self._data.get("stream") is False

    def estimate(self) -> int:
        """The proxy's own count of the prompt (the chain's), made once."""
        if self._estimate is None:
            if self._chain and self.path not in EMBEDDING_PATHS and (self._data.get("messages")
                                                                      or self._data.get("prompt")):
                self._estimate = prompt_tokens(self._chain)
            elif self.large:
                self._estimate = off_loop(lambda: prompt_estimate(self.path, self._data))
            else:
                self._estimate = prompt_estimate(self.path, self._data)
        return self._estimate

    @property
    def large(self) -> bool:  # estimated on a thread: 45 MB took 0.2 s
        return isinstance(self._body, OllamaBody) and len(self._body.encoded()) > OFF_LOOP_BYTES

    def tokens(self) -> int:
        """The prompt tokens charged: as Ollama would count them, up to the context."""
        estimated = self.estimate()
        if self.path in LEARNT_PATHS:
            estimated = self._counts.prompt(self.model, estimated)
        return min(estimated, self.context)

    def generated(self, seconds: float, prompt: int) -> int:
        """The tokens a whole answer generated in ``seconds`` of its slot, its ``prompt`` read first."""
        return self._counts.generated(self.model, seconds, prompt)

    def answered(self, figures: dict | None) -> None:
        """Learn from the figures of the answer's final chunk, if it came (and the estimate costs no thread)."""
        if figures and self.path in LEARNT_PATHS and (self._estimate is not None or self._chain or not self.large):
            self._counts.answered(self.model, self.estimate(), figures)


def context_of(data: dict, granted: dict | None, default: int) -> int:
    """The ``num_ctx`` a request runs with: the one its grant sends, else its own, else the server's default."""
    for options in (granted, data.get("options")):
        value = options.get("num_ctx") if isinstance(options, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def prompt_charge(path: str, body, model: str, default_context: int, counts: AnswerCounts, chain: tuple = (),
                  granted: dict | None = None) -> PromptCharge:
    data = body.data if isinstance(body, OllamaBody) else {}
    return PromptCharge(path, body, model, chain, context_of(data, granted, default_context), counts)


def charged_tokens(charge: PromptCharge | None) -> Callable[[], int] | None:
    return None if charge is None else charge.tokens
