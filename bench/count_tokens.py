"""Measure count_tokens against a real tokenizer: llama.cpp's, for the model the end-to-end tests run.

    python -m bench.count_tokens [--url http://127.0.0.1:8080 --api-key KEY]

Without ``--url`` it starts llama-server with SmolLM2-135M (``scripts/install-llama-server.sh``
installs both). Each request of ``bench/token_corpus.py`` is translated as the proxy translates
it (Anthropic -> Ollama -> the OpenAI-compatible body a provider gets), rendered by the server's
chat template (``/apply-template``, Qwen2.5's) and tokenized (``/tokenize``): that is the prompt
the model sees. Its token count is compared with the proxy's estimate, raw and with the learnt
correction (``TokenCorrection`` replayed over the requests in order, each estimated before it
is learnt from, as the proxy does). The error is (estimate - count) / count.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.token_corpus import Case, corpus
from ollama_proxy.translate.anthropic.correction import TokenCorrection, corrected
from ollama_proxy.translate.anthropic.request import from_anthropic_messages
from ollama_proxy.translate.anthropic.tokens import Estimate, estimate
from ollama_proxy.translate.provider_request import to_provider_chat


@dataclass(frozen=True)
class Measured:
    case: Case
    estimate: Estimate
    counted: int  # the model's tokenizer, on the rendered prompt
    learnt: int  # the estimate corrected by what the requests before it taught

    @property
    def error(self) -> float:
        return (self.estimate.tokens - self.counted) / self.counted

    @property
    def learnt_error(self) -> float:
        return (self.learnt - self.counted) / self.counted


@dataclass(frozen=True)
class Figures:
    """Absolute errors over some requests: median, 90th percentile, largest; and the signed mean."""

    n: int
    median: float
    p90: float
    largest: float
    mean: float

    @classmethod
    def of(cls, errors: Sequence[float]) -> Figures:
        absolute = sorted(abs(e) for e in errors)
        return cls(len(errors), statistics.median(absolute), absolute[int(0.9 * (len(absolute) - 1))],
                   absolute[-1], statistics.fmean(errors))


class Tokenizer:
    """A llama-server's chat template and tokenizer."""

    def __init__(self, url: str, api_key: str | None = None):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def _post(self, path: str, body: dict) -> dict:
        response = self.session.post(self.url + path, json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def prompt_tokens(self, body: dict) -> int:
        """Count the tokens of the prompt the model sees for an Anthropic request sent through the proxy."""
        chat = to_provider_chat(from_anthropic_messages({"model": "m", "max_tokens": 1, **body}))
        rendered = {"messages": chat["messages"], **({"tools": chat["tools"]} if chat.get("tools") else {})}
        prompt = self._post("/apply-template", rendered)["prompt"]
        return len(self._post("/tokenize", {"content": prompt})["tokens"])


def measure(tokenizer: Tokenizer, cases: Sequence[Case] | None = None,
            correction: Callable[[], TokenCorrection] = TokenCorrection) -> list[Measured]:
    """Estimate and count every request, replaying the learnt correction over them in order."""
    learner = correction()
    measured = []
    for case in corpus() if cases is None else cases:
        guess, counted = estimate(case.body), tokenizer.prompt_tokens(case.body)
        measured.append(Measured(case, guess, counted, corrected(guess, learner.ratio("model"))))
        learner.observe("model", guess, counted)
    return measured


LONG = 256  # tokens: the prompts the correction learns from (token_counts.min_prompt_tokens), as agents send


def by_kind(measured: Sequence[Measured]) -> dict[str, list[Measured]]:
    """Group the requests: all, those of LONG tokens or more, then each kind."""
    kinds: dict[str, list[Measured]] = {"all": list(measured),
                                        f"{LONG}+ tokens": [row for row in measured if row.counted >= LONG]}
    for row in measured:
        kinds.setdefault(row.case.kind, []).append(row)
    return kinds


def table(measured: Sequence[Measured]) -> str:
    """Return the figures as a Markdown table: per kind of request, raw and with the learnt correction."""
    lines = ["| requests | n | tokens | median error | 90th pct | largest | mean (signed) | learnt: median | "
             "learnt: largest |", "|---|---|---|---|---|---|---|---|---|"]
    for kind, rows in by_kind(measured).items():
        raw, learnt = Figures.of([r.error for r in rows]), Figures.of([r.learnt_error for r in rows])
        span = f"{min(r.counted for r in rows)}–{max(r.counted for r in rows)}"
        lines.append(f"| {kind} | {raw.n} | {span} | {raw.median:.1%} | {raw.p90:.1%} | {raw.largest:.1%} | "
                     f"{raw.mean:+.1%} | {learnt.median:.1%} | {learnt.largest:.1%} |")
    return "\n".join(lines)


def details(measured: Sequence[Measured]) -> str:
    return "\n".join(f"{r.case.kind:>16} {r.case.name:<24} counted {r.counted:>6} estimated {r.estimate.tokens:>6} "
                     f"({r.error:+.1%}) learnt {r.learnt:>6} ({r.learnt_error:+.1%})" for r in measured)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running llama-server (default: start one with SmolLM2-135M)")
    parser.add_argument("--api-key", help="the llama-server's API key, if it has one")
    parser.add_argument("--details", action="store_true", help="print every request's figures too")
    args = parser.parse_args(argv)
    server = None
    if args.url is None:
        from tests.e2e.llama import LlamaServer  # only when this script starts the server itself

        server = LlamaServer(Path(tempfile.mkdtemp(prefix="count-tokens-")), api_key="bench").start()
        args.url, args.api_key = server.url, server.api_key
    try:
        measured = measure(Tokenizer(args.url, args.api_key))
    finally:
        if server is not None:
            server.stop()
    print(table(measured))
    if args.details:
        print("\n" + details(measured))


if __name__ == "__main__":
    main()
