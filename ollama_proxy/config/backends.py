"""Declare the upstreams the proxy routes to: the ``backends:``, ``retry:`` and ``routing:`` sections.

Nothing here reads the environment: loading fills in each provider's API key and
the timeouts it leaves to ``service``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Annotated, ClassVar

from marshmallow import ValidationError, fields, validate

from ollama_proxy.backends.presets import PRESETS
from ollama_proxy.config.checks import AT_LEAST_0, AT_LEAST_1, NON_EMPTY, SECONDS, HttpUrl, NonEmpty
from ollama_proxy.config.declare import setting
from ollama_proxy.config.paths import without_trailing_slash
from ollama_proxy.config.schema import FrozenList, schema_for

DEFAULT_SERVER = "default"  # the name of service.base_url among the backends
CAPABILITIES = ("completion", "tools", "vision", "thinking", "embedding", "insert")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_NAME_HELP = "letters, digits, `_`, `.` and `-`, unique among the backends; not `default`"


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValidationError("letters, digits, '_', '.' and '-' only")
    if name == DEFAULT_SERVER:
        raise ValidationError(f"'{DEFAULT_SERVER}' is service.base_url's name; choose another")


@dataclass(frozen=True)
class OllamaServerSettings:
    TAG: ClassVar[tuple[str, str]] = ("type", "ollama")

    name: str = setting(validate=_check_name, help=_NAME_HELP)
    base_url: HttpUrl = setting(then=without_trailing_slash, help="the server")
    max_concurrent: int | None = setting(
        None, validate=AT_LEAST_1,
        help="a cap over all the server's models at once; with `scheduling: off`, more wait up to "
             "`routing.slot_wait` (absent: no cap of its own)")
    models: tuple[NonEmpty, ...] = setting(
        (), help="glob patterns of the only models routed there (empty: any model it has)")
    num_parallel: int = setting(
        1, validate=AT_LEAST_1,
        help="requests the server runs at once per loaded model: its `OLLAMA_NUM_PARALLEL` (the proxy sends no more)")
    max_loaded_models: int = setting(
        3, validate=AT_LEAST_1, help="models the server keeps loaded at once: its `OLLAMA_MAX_LOADED_MODELS`")
    model_num_parallel: dict[NonEmpty, Annotated[int, validate.Range(min=1)]] = setting(
        {}, help="per model: requests the proxy sends the server at once, fewer than `num_parallel` (Ollama runs every "
                 "model with `num_parallel` slots; an embedding model, and some architectures, with one)")
    prompt_cache_mib: int = setting(
        8192, validate=AT_LEAST_0,
        help="MiB of RAM prompt cache each loaded model's llama-server keeps (Ollama 0.30 and later): its "
             "`--cache-ram`, which Ollama leaves at llama-server's 8192; the proxy counts a conversation pushed out "
             "of its slot as still cheap on that server while it fits (`0`: none)")
    multiuser_cache: bool = setting(
        False, help="ignored: `OLLAMA_MULTIUSER_CACHE` is gone since Ollama 0.30, whose llama-server chooses "
                    "slots by prompt; kept so that a configuration that sets it still loads")
    scheduling: bool = setting(
        True, help="the proxy decides who runs next on the server (see `scheduling`); `off`: requests are sent at "
                   "once, and queue in Ollama")
    teams: tuple[NonEmpty, ...] = setting(
        (), help="the teams (`ollama-proxy teams`) whose keys alone are sent to the server: it keeps their prompts, "
                 "in its llama-server's cache, from every other tenant (empty: shared by every key; see "
                 "docs/tenants.md)")
    lend_idle: bool = setting(
        False, help="with `teams`: other keys may use the server while it runs nothing of this worker's; they then "
                    "share its prompt cache with its teams, who may time one another's prompts")


Capability = Annotated[str, validate.OneOf(CAPABILITIES)]


@dataclass(frozen=True)
class ModelFacts:
    context_length: int | None = setting(None, validate=AT_LEAST_1, help="the model's context length")
    capabilities: tuple[Capability, ...] = setting(
        (), help=f"what the model can do, of {', '.join(f'`{c}`' for c in CAPABILITIES)}")


@dataclass(frozen=True)
class ProviderSettings:
    TAG: ClassVar[tuple[str, str]] = ("type", "openai")

    name: str = setting(validate=_check_name, help=_NAME_HELP)
    preset: str | None = setting(
        None, validate=validate.OneOf(sorted(PRESETS)),
        help=f"{', '.join(f'`{name}`' for name in PRESETS)}: the base URL and the provider's thinking switch")
    # Absent from the file: the preset's, filled in by BackendField.
    base_url: HttpUrl = setting(
        None, then=without_trailing_slash,
        help="the API root with `/v1`; absent: the preset's (one of the two is needed)")
    api_key_env: str | None = setting(
        None, validate=NON_EMPTY,
        help="the environment variable holding the API key; unset or empty stops the start, naming it")
    models: tuple[NonEmpty, ...] = setting((), help="the provider's models to list")
    headers: dict[NonEmpty, str] = setting({}, help="extra headers sent with every request")
    model_facts: dict[str, ModelFacts] = setting({}, help="per model: facts shown by `/api/show`")
    # Only these reach the provider as OpenAI-Organization and OpenAI-Project: a client's own are dropped.
    organization: str | None = setting(
        None, validate=NON_EMPTY, repr=False,
        help="sent as `OpenAI-Organization` with every request (absent: not sent; a client's own is never forwarded)")
    project: str | None = setting(
        None, validate=NON_EMPTY, repr=False,
        help="sent as `OpenAI-Project` with every request (absent: not sent; a client's own is never forwarded)")
    connect_timeout: float | None = setting(
        None, validate=SECONDS, help="seconds to open a connection to the provider; absent: `service.connect_timeout`")
    read_timeout: float | None = setting(
        None, validate=SECONDS, help="seconds to wait for an answer to start; absent: `service.read_timeout`")
    stream_idle_timeout: float | None = setting(
        None, validate=SECONDS,
        help="seconds of silence allowed once a stream has started; absent: `service.stream_idle_timeout`")
    pool_size: int = setting(
        100, validate=AT_LEAST_1,
        help="pooled connections to the provider per worker process (past it, connections are opened and "
             "dropped after use)")
    models_cache_seconds: float = setting(
        300.0, validate=AT_LEAST_0,
        help="seconds the provider's `GET /models` answer is kept for listings and `/api/show` (`0`: asked each "
             "time; unused when `models` is set)")
    api_key: str | None = field(default=None, repr=False)  # read from $api_key_env when loading


KINDS = {kind.TAG[1]: kind for kind in (OllamaServerSettings, ProviderSettings)}


class BackendField(fields.Field):
    """One ``backends:`` entry, checked by the section its ``type`` names."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("a backend is a mapping with a name and a type")
        kind_name = value.get("type")
        kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            raise ValidationError({"type": [f"must be one of: {', '.join(KINDS)}"]})
        backend = schema_for(kind)().load(value)
        return _with_preset_url(backend) if isinstance(backend, ProviderSettings) else backend


def _with_preset_url(provider: ProviderSettings) -> ProviderSettings:
    if provider.base_url is not None:
        return provider
    if provider.preset is None:
        raise ValidationError({"base_url": ["name a preset or a base_url"]})
    return replace(provider, base_url=without_trailing_slash(PRESETS[provider.preset].base_url))


def unique_names(backends: tuple) -> None:
    names = [b.name for b in backends]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValidationError(f"backend names must be unique: {', '.join(twice)}")


class BackendList(FrozenList):
    """The ``backends:`` list, each entry of the kind its ``type`` names."""

    type_name = "list of backends"

    def __init__(self, **kwargs):
        super().__init__(BackendField(), **kwargs)


@dataclass(frozen=True)
class SchedulingSettings:
    # Ollama's own queue holds OLLAMA_MAX_QUEUE (512) requests: a client that works straight to Ollama must not
    # be refused sooner through the proxy; but for one key's share of a model's queue (half: 256), so that one
    # key's flood never shuts the others out of a model, as it would on Ollama.
    max_queued_per_principal: int = setting(
        512, validate=AT_LEAST_1,
        help="requests one key or token may have waiting for a slot, its end users' together; more are a 429 "
             "with `Retry-After` (Ollama queues 512)")
    max_end_users_per_key: int = setting(
        1000, validate=AT_LEAST_1,
        help="end users a trusted front end's key may have fair shares for inside its own (each named user gets an "
             "equal part of the key's share); past it the one idle longest is forgotten, and while all are active "
             "a new one is scheduled as the key's own requests")
    max_queued_per_model: int = setting(
        512, validate=AT_LEAST_1,
        help="requests that may wait for one model on one server; a request that finds this many on every server "
             "that may run it is a 503 with `Retry-After` (Ollama queues 512)")
    max_queued_share: float = setting(
        0.5, validate=validate.Range(min=0, max=1, min_inclusive=False),
        help="the part of `max_queued_per_model` one key or token may fill with its own requests for one model "
             "(at least one request), and so may a person's keys together and a team's; more are a 429 with "
             "`Retry-After`, so one key's, person's or team's flood never fills a model's queue and others still get "
             "in (`1`: a key may fill it all, as Ollama lets it)")
    max_wait: float = setting(
        600.0, validate=SECONDS, env="OLLAMA_PROXY_MAX_WAIT",
        help="seconds a request may wait for a slot; then a 503 with `Retry-After`")
    unreachable_timeout: float = setting(
        10.0, validate=SECONDS,
        help="seconds a request waits while its worker can reach no scheduler at all (one is being chosen, after "
             "the last one's worker exited); then a 503 with `Retry-After`, and so is every request until one answers")
    keepalive_interval: float = setting(
        10.0, validate=SECONDS,
        help="seconds a streamed request waits for its slot in silence; then its stream starts and gets a "
             "keepalive this often (a space on the native API, an SSE comment on OpenAI's, a `ping` on "
             "Anthropic's) until its answer comes, so clients and front proxies do not time it out")
    order: str = setting(
        "fair", validate=validate.OneOf(["fair", "arrival"]),
        help="who of the requests waiting for a slot goes first: `fair`, people before `batch` work, then the key "
             "(or end user) that has had the least slot-time; `arrival`, first come, first served, as Ollama's own "
             "queue (placement, `interactive_headroom` and the queue's bounds still hold)")
    batch_ageing: float = setting(
        60.0, validate=AT_LEAST_0,
        help="seconds after which a waiting `batch` request goes by fair share alone, as an `interactive` one")
    interactive_headroom: int = setting(
        1, validate=AT_LEAST_0,
        help="warm slots of a model that `batch` work leaves free while people use the model, so a question "
             "need not wait for a batch answer to end; an interactive key's long answers are paced apart then, "
             "and its first answers asked as many at once as the slots leave as many free until one ends "
             "(`0`: none of these, every free slot is taken at once)")
    headroom_window: float = setting(
        30.0, validate=AT_LEAST_0,
        help="seconds after an interactive request for a model during which its headroom is held; so too for the "
             "first this many seconds the proxy sees the model asked for, before which it cannot tell that no one "
             "uses it")
    fair_memory: float = setting(
        120.0, validate=AT_LEAST_0,
        help="seconds a key that has nothing waiting or running keeps the slot-time it had beyond the least-served "
             "key: an agent back from a turn's think time, or a script between batches, comes back behind those "
             "who waited, not level with them; later it comes back level (`0`: always level)")
    prompt_placement: bool = setting(
        True, help="place a request where its prompt is cached: the proxy follows what each server's llama-server "
                   "holds in its slots and RAM prompt cache (`false`: by model alone, warm servers first)")
    prompt_cache_isolation: str = setting(
        "team", validate=validate.OneOf(["team", "key", "off"]),
        help="whose cached prompts placement may send a request to: its own team's (a key without a team: its own), "
             "its own key's (`key`), or anyone's (`off`); the proxy then never steers one tenant's request to "
             "another's cached prompt, whose reuse its timing and counts would show. llama-server itself still "
             "shares one server's cache among all who reach it: servers per team keep tenants apart")
    prefix_hold: float = setting(
        60.0, validate=AT_LEAST_0,
        help="seconds a request waits at most for a busy server that holds its conversation (coding agents send "
             "the whole conversation again each turn), and only while its wait, so far and still expected, stays "
             "under what reading the conversation again elsewhere costs: its own time and as much of that "
             "server's (`0`: never waits)")
    yield_within: float = setting(
        1.0, validate=AT_LEAST_0,
        help="seconds a request may be kept waiting so that one expected to hold a slot at least twice as long "
             "starts first, on a slot that frees while slots about to free will start it in that time; long "
             "answers then start as slots free instead of together, and do not end together (`0`: strict order)")
    slot_seconds: float = setting(
        5.0, validate=SECONDS, help="how long a request is expected to hold its slot, until the proxy has seen some")
    load_gather: float = setting(
        0.1, validate=AT_LEAST_0,
        help="seconds the first load of a model that no server says it has loaded, after the proxy first hears of "
             "it, waits for the requests that come with it, so that Ollama loads it once with the largest reload "
             "options they ask (`num_ctx` and the like, which make Ollama reload on any other value); later loads, "
             "loads beside a server that has it, and loads before the servers said what they have, take the "
             "largest asked so far at once (`0`: the first load at once too)")
    load_seconds: float = setting(
        10.0, validate=AT_LEAST_0,
        help="how long a model is expected to take to load, until the proxy has seen Ollama's `load_duration`")
    status_timeout: float = setting(
        1.0, validate=SECONDS,
        help="seconds `/metrics` and the admin page's scheduler view wait for the scheduler's state; past it they "
             "say it did not answer")


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = setting(3, validate=AT_LEAST_1, help="tries of a provider request that fails before its first byte")
    total_timeout: float = setting(30.0, validate=SECONDS, help="seconds all tries of one request may take")
    backoff: float = setting(0.5, validate=AT_LEAST_0, help="seconds before the second try, doubled each time")
    max_backoff: float = setting(8.0, validate=AT_LEAST_0, help="longest wait between two tries")


@dataclass(frozen=True)
class RoutingSettings:
    refresh_interval: float = setting(
        10.0, validate=SECONDS,
        help="seconds between two reads of each Ollama server's models (`/api/tags`, `/api/ps`)")
    refresh_timeout: float = setting(
        5.0, validate=SECONDS,
        help="seconds a server has to answer one of those reads, and its part of a listing (`/api/tags`, "
             "`/api/ps`, `/v1/models`), and a read of a model's capabilities: a hung server is left out")
    cooldown: float = setting(
        30.0, validate=AT_LEAST_0, help="seconds a server that refused a connection or failed (5xx) is passed over")
    slot_wait: float = setting(
        30.0, validate=AT_LEAST_0,
        help="longest wait for a free slot on a server at its `max_concurrent`; then 503")
    capabilities_cache_seconds: float = setting(
        300.0, validate=AT_LEAST_0,
        help="seconds a model's capabilities (`/api/show`), read from a server when a translated request asks for "
             "thinking, are kept per server and model (`0`: read each time); the read is bounded by "
             "`routing.refresh_timeout`")
