"""Declare how the proxy serves a request: the ``service:``, ``limits:``, ``images:`` and ``cors:`` sections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from marshmallow import validate

from ollama_proxy.config.checks import AT_LEAST_0, AT_LEAST_1, SECONDS, HttpUrl, MiB, NonEmpty
from ollama_proxy.config.declare import setting
from ollama_proxy.config.paths import without_trailing_slash


@dataclass(frozen=True)
class ServiceSettings:
    base_url: HttpUrl = setting(
        "http://localhost:11434", then=without_trailing_slash, env="OLLAMA_PROXY_BASE_URL",
        help="the Ollama server")
    connect_timeout: float = setting(
        5.0, validate=SECONDS, env="OLLAMA_PROXY_CONNECT_TIMEOUT", help="seconds to open a connection to Ollama")
    read_timeout: float = setting(
        600.0, validate=SECONDS, env="OLLAMA_PROXY_READ_TIMEOUT",
        help="seconds to wait for an answer to start (model loading included)")
    stream_idle_timeout: float = setting(
        300.0, validate=SECONDS, env="OLLAMA_PROXY_STREAM_IDLE_TIMEOUT",
        help="seconds of silence allowed once a stream has started; then it is cut with an error frame "
             "(checked eight times a period: the cut comes within an eighth of it)")
    num_parallel: int = setting(
        1, validate=AT_LEAST_1, env="OLLAMA_PROXY_NUM_PARALLEL",
        help="requests the server runs at once per loaded model: its `OLLAMA_NUM_PARALLEL` (the proxy sends no more)")
    max_loaded_models: int = setting(
        3, validate=AT_LEAST_1, env="OLLAMA_PROXY_MAX_LOADED_MODELS",
        help="models the server keeps loaded at once: its `OLLAMA_MAX_LOADED_MODELS`")
    max_concurrent: int | None = setting(
        None, validate=AT_LEAST_1, help="a cap over all the server's models at once (absent: no cap of its own)")
    model_num_parallel: dict[NonEmpty, Annotated[int, validate.Range(min=1)]] = setting(
        {}, help="per model: requests the proxy sends the server at once, fewer than `num_parallel` (Ollama runs every "
                 "model with `num_parallel` slots; an embedding model, and some architectures, with one)")
    prompt_cache_mib: int = setting(
        8192, validate=AT_LEAST_0, env="OLLAMA_PROXY_PROMPT_CACHE_MIB",
        help="MiB of RAM prompt cache each loaded model's llama-server keeps (Ollama 0.30 and later): its "
             "`--cache-ram`, which Ollama leaves at llama-server's 8192; the proxy counts a conversation pushed out "
             "of its slot as still cheap on that server while it fits (`0`: none)")
    multiuser_cache: bool = setting(
        False, env="OLLAMA_PROXY_MULTIUSER_CACHE",
        help="ignored: `OLLAMA_MULTIUSER_CACHE` is gone since Ollama 0.30, whose llama-server chooses slots by "
             "prompt; kept so that a configuration that sets it still loads")
    scheduling: bool = setting(
        True, env="OLLAMA_PROXY_SCHEDULING",
        help="the proxy decides who runs next on the server (see `scheduling`); `off`: requests are sent at "
             "once, and queue in Ollama")
    teams: tuple[NonEmpty, ...] = setting(
        (), help="the teams whose keys alone are sent to the server, as `backends[].teams` (empty: every key)")
    lend_idle: bool = setting(False, help="with `teams`: as `backends[].lend_idle`")
    health_timeout: float = setting(2.0, validate=SECONDS, help="seconds `/health` waits for Ollama")
    pool_size: int = setting(1000, validate=AT_LEAST_1, help="pooled connections to Ollama per worker process")
    stream_ping_interval: float = setting(
        10.0, validate=SECONDS,
        help="seconds of upstream silence before an Anthropic stream starts or gets a `ping`")
    health_cache_seconds: float = setting(
        2.0, validate=AT_LEAST_0,
        help="seconds a worker reuses its last `/health` probe, so a loop of `/health` calls sends Ollama one "
             "probe per worker per period (`0`: probe on every call)")
    # How many proxies (nginx) stand in front is the deploy's to say, not whoever edits the YAML.
    trusted_proxies: int = setting(
        0, validate=AT_LEAST_0, env="OLLAMA_PROXY_TRUSTED_PROXIES",
        help="proxies in front whose `X-Forwarded-For`, `-Proto` and `-Host` are trusted: the client's address is "
             "what the last of them saw (access log, admin-login counters). `0`: a client's own `X-Forwarded-For` "
             "is ignored; `1` behind the nginx of `deploy/nginx.conf` (its environment file sets "
             "`OLLAMA_PROXY_TRUSTED_PROXIES=1`). Never more than really stand in front")
    # llama-server stopped 2-27 ms (tokens 7 ms apart) after its client half-closed, and closed its end with it
    # (tests/e2e/test_llamacpp_cancel.py): a slower model stops within a token's time, which this bound covers.
    cut_hold: float = setting(
        0.5, validate=AT_LEAST_0,
        help="seconds a cut answer (its client left, or it fell silent) keeps its slot, and is charged, while "
             "Ollama stops: the proxy tells Ollama it is done sending and waits for Ollama to close; an Ollama "
             "still answering then is cut outright. `0.5` covers a real llama-server's stop (2-27 ms) with room for "
             "a slow model's token (`0`: at once, and the slot's next request may wait in Ollama)")
    context_length: int = setting(
        4096, validate=AT_LEAST_1,
        help="tokens of context the server gives a model that no request or load names a `num_ctx` for: its "
             "`OLLAMA_CONTEXT_LENGTH` (Ollama's default is 4096, 32768 or 262144 by VRAM); a request whose answer "
             "never says its prompt's count is charged no more prompt tokens than its context holds")


@dataclass(frozen=True)
class LimitSettings:
    max_body_bytes: int = setting(
        50 * MiB, validate=AT_LEAST_1, help="largest JSON body (images included); larger is a 413")
    max_messages: int = setting(
        20_000, validate=AT_LEAST_1,
        help="messages one chat may hold (native, OpenAI and Anthropic); more are a 413. Each is checked before the "
             "request goes on")
    max_input_items: int = setting(
        20_000, validate=AT_LEAST_1, help="input items one Responses request may hold; more are a 413")
    max_tools: int = setting(2_000, validate=AT_LEAST_1, help="tools one request may offer the model; more are a 413")
    max_images: int = setting(
        1_000, validate=AT_LEAST_1, help="images one request may hold, over all its messages; more are a 413")
    max_blob_bytes: int = setting(
        64 * 1024 * MiB, validate=AT_LEAST_1,
        help="largest blob upload, streamed to Ollama, never held in memory")
    # Threads share the interpreter lock with the event loop: more at once read no faster, and each one more is
    # one more the loop may wait behind for the lock (a long C call, such as decoding a 45 MB JSON string).
    off_loop_threads: int = setting(
        2, validate=AT_LEAST_1,
        help="threads of a worker that read large request bodies at once, off its event loop (parse, check, "
             "estimate, encode and hash them); other large bodies wait their turn, so the worker's streams go on "
             "and its thread pool keeps room for other work")


@dataclass(frozen=True)
class ImageSettings:
    fetch_urls: bool = setting(
        True, help="fetch `http(s)` image URLs sent by OpenAI clients (`false`: refuse them; send `data:` URIs)")
    allow_private: bool = setting(
        False,
        help="let image URLs reach loopback, private and link-local addresses (refused otherwise, each address a "
             "host resolves to, redirects included; an IPv6 address carrying an IPv4 one, as NAT64, 6to4, Teredo "
             "and IPv4-mapped or -compatible addresses do, is judged by that IPv4 address; site-local and zoned "
             "IPv6 addresses are refused)")
    max_bytes: int = setting(20 * MiB, validate=AT_LEAST_1, help="largest image fetched; larger is a 413")
    max_total_bytes: int = setting(
        50 * MiB, validate=AT_LEAST_1,
        help="bytes fetched for the image URLs of one request together; more is a 413")
    max_urls_per_request: int = setting(
        10, validate=AT_LEAST_1, help="image URLs one request may name; more is a 400, before any is fetched")
    timeout: float = setting(
        10.0, validate=SECONDS,
        help="seconds for one whole fetch: connect, redirects and body together, a deadline rather than a timeout "
             "per read, so a server sending a byte now and then cannot hold it; past it the request is a 400 (the "
             "URL is the client's input, and SDKs retry a 5xx). One request's fetches take at most "
             "`max_urls_per_request` × `timeout`")
    max_redirects: int = setting(3, validate=AT_LEAST_0, help="redirects followed (each one checked again)")


@dataclass(frozen=True)
class CorsSettings:
    origins: tuple[NonEmpty, ...] = setting(
        (), env="OLLAMA_PROXY_CORS_ORIGINS",
        help='browser origins allowed to call the proxy, e.g. `["https://chat.example.lan"]`; `["*"]` for any')
