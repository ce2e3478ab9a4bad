"""Declare the whole configuration: its sections, in the order the file's checks report them."""

from __future__ import annotations

from dataclasses import dataclass

from ollama_proxy.config.access import AdminSettings, AuthSettings, RateLimitSettings
from ollama_proxy.config.backends import (
    BackendList,
    OllamaServerSettings,
    ProviderSettings,
    RetrySettings,
    RoutingSettings,
    SchedulingSettings,
    unique_names,
)
from ollama_proxy.config.declare import section, setting
from ollama_proxy.config.models import ModelsSettings, TokenCountSettings
from ollama_proxy.config.records import (
    BudgetSettings,
    ChatLogSettings,
    LoggingSettings,
    MetricsSettings,
    StoreSettings,
    UsageSettings,
)
from ollama_proxy.config.service import CorsSettings, ImageSettings, LimitSettings, ServiceSettings


@dataclass(frozen=True)
class Settings:
    auth: AuthSettings = section(
        AuthSettings,
        help="Clients send a token as `Authorization: Bearer <token>`, `Authorization: <token>` or "
             "`x-api-key: <token>`. An entry is a plain string (logged by its position, as `generate#0`) or "
             '`{name: alice, token: "..."}` (logged by its name). Tokens are never written to a log. With no '
             "tokens at all, every request but /health is refused. Managed keys (`ollama-proxy keys create ...`) "
             "are looked up after these lists.")
    service: ServiceSettings = section(
        ServiceSettings, help="The Ollama server named `default`, and how the proxy talks to it.")
    limits: LimitSettings = section(LimitSettings, help="How large a request may be.")
    images: ImageSettings = section(
        ImageSettings,
        help="OpenAI and Anthropic clients may name an image by URL; Ollama takes only image data, so the proxy "
             "fetches it, guarded: private, loopback and link-local hosts are refused.")
    cors: CorsSettings = section(CorsSettings, help="Which web pages a browser lets call the proxy.")
    logging: LoggingSettings = section(LoggingSettings, help="The access log and the error log.")
    store: StoreSettings = section(
        StoreSettings,
        help="Managed API keys, usage, model aliases and overrides. The schema is created and migrated at start. "
             "SQLite needs nothing installed (a relative path is under the project root); several proxy "
             "instances share one PostgreSQL database instead.")
    backends: tuple[OllamaServerSettings | ProviderSettings, ...] = setting(
        (), field=BackendList, validate=unique_names,
        help="more Ollama servers (`type: ollama`) and OpenAI-compatible providers (`type: openai`), each with a "
             "unique name; `service.base_url` is the server named `default`. Requests are routed by model name; "
             'clients reach a provider\'s model as "deepseek:deepseek-chat" or "deepseek/deepseek-chat"')
    retry: RetrySettings = section(
        RetrySettings,
        help="A provider request that fails before its first byte (refused, 429, 5xx) is tried again.")
    routing: RoutingSettings = section(
        RoutingSettings, help="How each worker learns which Ollama server has which model, and passes over one "
                              "that fails.")
    scheduling: SchedulingSettings = section(
        SchedulingSettings,
        help="The proxy, not Ollama's first-come queue, decides who runs next on each server with `scheduling` "
             "on: it sends a server no more than it runs at once (`num_parallel` per loaded model, "
             "`max_loaded_models`, `max_concurrent`), picks the next request by weighted fair share between keys "
             "and tokens (`interactive` ahead of `batch`), and binds it to a server when a slot frees, where its "
             "model is loaded first. One scheduler serves every worker of an instance; several instances share "
             "one through `ratelimit.storage_url` when that is a Redis.")
    admin: AdminSettings = section(
        AdminSettings,
        help="The admin page at /admin (dashboard, keys, models, usage, backends). It is off until "
             "`password_hash` is set or `oidc` names an identity provider (both may be on). Make a hash with "
             "`ollama-proxy admin-password` (it asks for the password "
             "twice, or reads one line from stdin, and prints the hash).")
    models: ModelsSettings = section(
        ModelsSettings,
        help="Model aliases, per-model overrides and defaults for every request. Entries stored in the store "
             "(the admin page) win over these.")
    ratelimit: RateLimitSettings = section(
        RateLimitSettings,
        help="Where the per-minute counters of tokens with `rpm`/`tpm` live. The default SQLite file is shared by "
             "every worker of this instance (exact across workers, no service to run); several instances behind "
             'one nginx share a Redis instead: "redis://host:6379/0".')
    metrics: MetricsSettings = section(
        MetricsSettings,
        help="GET /metrics, in Prometheus' text format, added up across gunicorn's workers. Manage tokens and "
             "the tokens below may read it; generate tokens may not.")
    usage: UsageSettings = section(
        UsageSettings,
        help="Every request made with a token is recorded in the store's usage table (export it with "
             "`ollama-proxy usage`). Each worker queues rows and writes them in batches off the request path; a "
             "stopping worker writes what it holds before it exits.")
    budgets: BudgetSettings = section(
        BudgetSettings,
        help="Budgets per calendar period, for a team or a key (`ollama-proxy budgets set`): tokens, or GPU-seconds "
             "(Ollama's `total_duration`). A hard budget refuses requests once spent; a soft one serves them "
             "with `X-Budget-Exceeded`; a shadow one only counts what it would have refused.")
    chat_logs: ChatLogSettings = section(
        ChatLogSettings,
        help="Requests and answers of chats as JSON lines in `logging.dir`, images elided, secrets blanked. Off "
             "unless enabled here (every token) or a token in `auth` has `chat_log: true` (that token; "
             "`chat_log: false` keeps a token out). The workers rotate the file by size themselves.")
    token_counts: TokenCountSettings = section(
        TokenCountSettings,
        help="`/v1/messages/count_tokens` and the input tokens of a stream's start are estimates (Ollama has no "
             "tokenizer endpoint); each model's answers teach a correction to them. Each worker learns from the "
             "answers it relays (docs/anthropic.md, \"Token counts\").")
    source: str = "<defaults>"  # the file the settings were read from; no key of it

    @property
    def ollama_servers(self) -> tuple[OllamaServerSettings, ...]:
        """The ``type: ollama`` backends (the default server is ``service.base_url``)."""
        return tuple(b for b in self.backends if isinstance(b, OllamaServerSettings))

    @property
    def providers(self) -> tuple[ProviderSettings, ...]:
        return tuple(b for b in self.backends if isinstance(b, ProviderSettings))
