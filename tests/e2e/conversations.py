"""People's conversations with a model, turn after turn, straight to Ollama servers or through the proxy.

Each conversation opens with a system text of its own (or one shared by all) and grows by a
question and the model's answer a turn, as a chat client or a coding agent resends it whole. A
turn streams Ollama's native ``/api/chat`` and notes what its client saw: the time to its first
token, the time the proxy held it in its queue (``Server-Timing: queue``), and the prompt figures
of the final chunk. What the servers themselves read is theirs to say (``ollama_on_llama.Answered``).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

import requests

SENTENCE_TOKENS = 9  # "ann keeps file 12 tidy and tested." in SmolLM2's tokens, about
_QUEUE = re.compile(r"queue;dur=([0-9.]+)")


@dataclass
class Turn:
    """One turn as its client saw it."""

    who: str
    number: int  # 0: the conversation's first
    first_token: float  # seconds from asking to the first token
    queued: float  # seconds the proxy held it waiting for a slot (0 straight to a server)
    counted: int  # the final chunk's prompt_eval_count
    cached: int | None  # ... and prompt_eval_cached_count (None: not said)
    request_id: str | None = None  # the proxy's X-Request-Id (None: straight to a server)


@dataclass
class Conversation:
    who: str
    system_tokens: int
    turn_tokens: int
    shared_system: bool = False
    messages: list[dict] = field(default_factory=list)
    turns: int = 0

    def __post_init__(self) -> None:
        owner = "the team" if self.shared_system else self.who
        self.messages = [{"role": "system", "content": " ".join(
            f"{owner} keeps file {i} tidy and tested." for i in range(self.system_tokens // SENTENCE_TOKENS))}]

    def ask(self) -> str:
        """Add the next question; return the text that marks it (its first words)."""
        mark = question_mark(self.who, self.turns)
        asks = " ".join(f"fix module {i} and rerun its tests." for i in range(self.turn_tokens // SENTENCE_TOKENS))
        self.messages.append({"role": "user", "content": f"{mark} {asks}"})
        return mark

    def talk(self, url: str, token: str | None = None, num_predict: int = 16) -> Turn:
        """Ask the next question at ``url``, stream the answer, keep it in the conversation."""
        self.ask()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        asked = time.monotonic()
        first, reply, done = None, [], {}
        with requests.post(url + "/api/chat", headers=headers, stream=True, timeout=600, json={
                "model": "smollm2", "messages": self.messages, "options": {"num_predict": num_predict}}) as answer:
            answer.raise_for_status()
            queued = _queued(answer.headers.get("Server-Timing", ""))
            request_id = answer.headers.get("X-Request-Id")
            for line in answer.iter_lines():
                chunk = json.loads(line)
                text = (chunk.get("message") or {}).get("content")
                if text:
                    first = first or time.monotonic()
                    reply.append(text)
                if chunk.get("done"):
                    done = chunk
        self.messages.append({"role": "assistant", "content": "".join(reply)})
        self.turns += 1
        return Turn(self.who, self.turns - 1, (first or time.monotonic()) - asked, queued,
                    done.get("prompt_eval_count", 0), done.get("prompt_eval_cached_count"), request_id)


def question_mark(who: str, number: int) -> str:
    """The words a turn's question opens with: they name the conversation and the turn."""
    return f"{who} asks, turn {number}:"


def _queued(timing: str) -> float:
    found = _QUEUE.search(timing)
    return float(found.group(1)) / 1000 if found else 0.0
