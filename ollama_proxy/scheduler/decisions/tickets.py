"""What the scheduler works with: its bounds, the requests (tickets), the grants, the loans."""

from __future__ import annotations

from dataclasses import dataclass, field

from ollama_proxy.config import SchedulingSettings
from ollama_proxy.scheduler.decisions.fairness import INTERACTIVE, Share
from ollama_proxy.scheduler.decisions.prefix import Chain
from ollama_proxy.scheduler.decisions.servers import Placement

_SETTINGS = SchedulingSettings()  # the defaults, declared once with the settings


@dataclass(frozen=True)
class Bounds:
    """How much may wait, and for how long (``scheduling.*``; each default is the setting's)."""

    max_queued_per_principal: int = _SETTINGS.max_queued_per_principal
    max_end_users_per_key: int = _SETTINGS.max_end_users_per_key  # end users with fair shares of their own
    max_queued_per_model: int = _SETTINGS.max_queued_per_model  # per server and model
    max_queued_share: float = _SETTINGS.max_queued_share  # the part of those one principal may fill
    max_wait: float = _SETTINGS.max_wait  # seconds a request may wait for a slot
    batch_ageing: float = _SETTINGS.batch_ageing  # seconds after which a waiting batch request counts as interactive
    interactive_headroom: int = _SETTINGS.interactive_headroom  # warm slots batch work leaves free for people
    headroom_window: float = _SETTINGS.headroom_window  # seconds after an interactive request for a model it holds
    fair_memory: float = _SETTINGS.fair_memory  # seconds an idle principal keeps what it had over the least-served
    prefix_hold: float = _SETTINGS.prefix_hold  # seconds a long prompt waits at most for the busy server holding it
    prompt_cache_isolation: str = _SETTINGS.prompt_cache_isolation  # whose cached prompts placement may use
    load_gather: float = _SETTINGS.load_gather  # seconds a model's first load waits for the requests come with it
    yield_within: float = _SETTINGS.yield_within  # seconds one may wait so that a much longer one starts first
    order: str = _SETTINGS.order  # who of the waiting goes first (``order``: ``fair`` or ``arrival``)

    @property
    def principal_part_of_queue(self) -> int:
        """Requests one principal may have waiting for one model on one server (at least one)."""
        return max(1, int(self.max_queued_share * self.max_queued_per_model))

    @classmethod
    def of(cls, settings: SchedulingSettings) -> Bounds:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass
class Ticket:
    """One request waiting for, or holding, a slot."""

    id: str
    share: Share
    model: str
    candidates: tuple[str, ...]  # the servers that may serve it
    asked: dict = field(default_factory=dict)  # the reload options it asked for
    enforced: frozenset[str] = frozenset()  # those a per-model override fixed
    enqueued: float = 0.0
    yielded_at: float | None = None  # when it first let a longer request go ahead of it
    held_for_questions: float | None = None  # when it was first held so as not to be read ahead of a question
    prefix: Chain = ()  # its prompt, as Ollama's prompt caches compare it (``prefix``)
    waits_for: str | None = None  # a busy server that holds its prompt, which it waits for (``placement``)
    embeds: bool = False  # an embedding: a model it loads is an embedding model, which Ollama runs with one slot


@dataclass(frozen=True)
class PromptRead:
    """What an answer says of its prompt: Ollama's tokens, those read from cache (None: not said), the seconds."""

    tokens: int  # prompt_eval_count: every prompt token, those from cache included (Ollama 0.30 and later)
    cached: int | None  # prompt_eval_cached_count (None: not said, as no Ollama release up to 0.33 says it)
    seconds: float  # prompt_eval_duration: the reading of what was not cached


@dataclass(frozen=True)
class Grant:
    ticket: str
    placement: Placement
    waited: float
    # The prompt tokens the mirror expects the server to read from its cache, in Ollama's tokens: the proxy's
    # estimate, never an answer's figure (None: none made; the arbiter adds it as it sends the grant).
    cached: int | None = None


@dataclass
class Loan:
    """Free warm slots of one model on one server, lent to a worker (its ``holder``) while nothing waits."""

    id: str
    holder: str
    server: str
    model: str
    options: dict  # the reload options the model runs with there
    slots: int
    in_use: int = 0
    recalled: bool = False
    stale: bool = False  # the server says the model runs with other options now
    # What it is for: requests of these classes whose prompt is shorter (0: any). The others ask the arbiter.
    classes: tuple[str, ...] = (INTERACTIVE,)
    prompt_below: int = 0

    def admits(self, klass: str, prompt: int) -> bool:
        """Whether a request of ``klass`` with ``prompt`` tokens may start on this loan without asking."""
        return klass in self.classes and (not self.prompt_below or prompt < self.prompt_below)


@dataclass
class Running:
    """A granted request, holding its slot."""

    ticket: Ticket
    placement: Placement
    started: float
    charged: float
    loan: str | None = None  # the loan it started on, while that is not returned
    cached: int = 0  # prompt tokens the server is expected to read from its cache
    expected: float = 0.0  # seconds it is expected to hold its slot, its prompt's reading included
