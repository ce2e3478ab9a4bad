"""Name every surface the proxy serves and every Ollama path it forwards: one table each, looked up everywhere.

A surface is a protocol a client speaks at some paths (native Ollama, OpenAI,
Anthropic, Responses, the admin page …). Its record says which paths are its,
which blueprints serve them, how its errors are written, and which of its
requests are chats (for the chat log). The ledger names a request's surface,
the app renders its errors and the chat log picks its requests from here.

An Ollama path's record says how the native blueprint serves it, the token
scope it needs, which body fields name a model Ollama acts on, and whether it
is routed to the server holding the model, answers in a stream, and makes a
GPU work (so it waits for a slot). Auth, the native blueprint and the
dispatcher read these; nothing else lists Ollama's paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ollama_proxy.errors import ProxyError, to_anthropic_error, to_ollama_error, to_openai_error

# The scope a path needs: anyone, a generate token (any token), a manage token.
PUBLIC, GENERATE, MANAGE = "public", "generate", "manage"


@dataclass(frozen=True)
class Surface:
    """One protocol the proxy speaks, at its paths: ``prefixes`` (what begins with them) and ``paths`` (exactly)."""

    name: str
    blueprints: tuple[str, ...]  # the Flask blueprints that serve its routes
    prefixes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    render_error: Callable[[ProxyError], dict] | None = to_ollama_error  # None: an HTML page, for a browser
    chats: tuple[str, ...] = ()  # its paths whose POSTs are conversation turns, written to the chat log


SURFACES = (
    Surface("native", ("native",), ("/api/",), ("/",), chats=("/api/chat", "/api/generate")),
    Surface("web", ("native",), ("/api/experimental/web_",)),  # Ollama's web search and fetch
    Surface("openai", ("openai", "embeddings", "audio"), ("/v1/",), render_error=to_openai_error,
            chats=("/v1/chat/completions", "/v1/completions")),
    Surface("responses", ("responses",), ("/v1/responses",), render_error=to_openai_error, chats=("/v1/responses",)),
    Surface("anthropic", ("anthropic",), ("/v1/messages", "/anthropic/"), render_error=to_anthropic_error,
            chats=("/v1/messages", "/anthropic/v1/messages")),
    Surface("admin", ("admin",), ("/admin/",), ("/admin",), render_error=None),
    Surface("other", ("health", "openapi", "metrics", "favicon"), (),
            ("/health", "/openapi.json", "/metrics", "/favicon.ico")),
)
OTHER = SURFACES[-1]  # also the surface of a path no surface has


def _specificity(surface: Surface, path: str) -> int:
    """How closely ``surface`` claims ``path``: past any prefix for an exact path, else the prefix's length; 0: not."""
    if path in surface.paths:
        return 1 << 16
    return max((len(prefix) for prefix in surface.prefixes if path.startswith(prefix)), default=0)


def claims(path: str) -> list[tuple[int, Surface]]:
    """Every surface that claims ``path``, with how closely, the closest first."""
    found = [(_specificity(surface, path), surface) for surface in SURFACES]
    return sorted(((n, s) for n, s in found if n), key=lambda claim: -claim[0])


@lru_cache(maxsize=512)  # asked several times for every request; bounded, as the paths are the clients'
def surface_of(path: str) -> Surface:
    """Return the surface ``path`` belongs to: the one that claims it most closely (``OTHER`` if none does)."""
    found = claims(path)
    return found[0][1] if found else OTHER


def is_chat(path: str) -> bool:
    """Tell whether a POST to ``path`` is a conversation turn (native, OpenAI, Anthropic or Responses)."""
    return path in surface_of(path).chats


# How the native blueprint serves an Ollama path.
PLAIN = "plain"  # a read-only answer of the default server's, no body
LISTING = "listing"  # every backend's models the caller may use, merged
WEB = "web"  # web search or fetch, for a caller with the web permission
ACCOUNT = "account"  # the Ollama server's account on ollama.com, forwarded as it came
CHECKED = "checked"  # a JSON body checked against its schema, then routed or managed
BLOBS = "blobs"  # a model blob, checked for or streamed in (a prefix: /api/blobs/<digest>)
FORM = "form"  # a multipart form, served by its own blueprint


@dataclass(frozen=True)
class OllamaPath:
    """One path of Ollama's API, and what the proxy must know to forward it."""

    path: str
    kind: str
    methods: tuple[str, ...] = ("POST",)
    scope: str = GENERATE
    # Body fields naming a model Ollama acts on, in the order Ollama reads them (`model`, else `name`);
    # `from` is the model a new one is made from, `source` and `destination` a copy's.
    model_fields: tuple[str, ...] = ()
    routed: bool = False  # goes to the backend that has the model (else: the default or X-Ollama-Server)
    streams: bool = False  # Ollama answers in a stream unless the body says "stream": false
    scheduled: bool = False  # makes a GPU work: waits for a slot the scheduler grants


_INFERENCE = {"kind": CHECKED, "model_fields": ("model", "name"), "routed": True, "scheduled": True}
OLLAMA_PATHS = (
    OllamaPath("/", PLAIN, ("GET",), PUBLIC),  # "Ollama is running", to anyone: clients probe it with no token
    OllamaPath("/api/version", PLAIN, ("GET",)),
    OllamaPath("/api/status", PLAIN, ("GET",)),
    OllamaPath("/api/experimental/model-recommendations", PLAIN, ("GET",)),
    OllamaPath("/api/experimental/web_search", WEB),
    OllamaPath("/api/experimental/web_fetch", WEB),
    OllamaPath("/api/me", ACCOUNT, scope=MANAGE),
    OllamaPath("/api/signout", ACCOUNT, scope=MANAGE),
    OllamaPath("/api/tags", LISTING, ("GET",)),
    OllamaPath("/api/ps", LISTING, ("GET",)),
    OllamaPath("/api/generate", streams=True, **_INFERENCE),
    OllamaPath("/api/chat", streams=True, **_INFERENCE),
    OllamaPath("/api/embed", **_INFERENCE),
    OllamaPath("/api/embeddings", **_INFERENCE),
    OllamaPath("/api/show", CHECKED, model_fields=("model", "name"), routed=True),
    OllamaPath("/api/pull", CHECKED, scope=MANAGE, model_fields=("model", "name"), streams=True),
    OllamaPath("/api/push", CHECKED, scope=MANAGE, model_fields=("model", "name"), streams=True),
    OllamaPath("/api/create", CHECKED, scope=MANAGE, model_fields=("model", "name", "from"), streams=True),
    OllamaPath("/api/delete", CHECKED, ("DELETE",), MANAGE, ("model", "name")),
    OllamaPath("/api/copy", CHECKED, scope=MANAGE, model_fields=("source", "destination")),
    OllamaPath("/api/blobs/", BLOBS, ("HEAD", "POST"), MANAGE),
    OllamaPath("/v1/audio/transcriptions", FORM, model_fields=("model",), routed=True, scheduled=True),
)
_BY_PATH = {entry.path: entry for entry in OLLAMA_PATHS}


def ollama_path(path: str) -> OllamaPath | None:
    """Return the record of an Ollama path the proxy lists (a blob's, under its prefix), or None."""
    entry = _BY_PATH.get(path)
    if entry is None and path.startswith("/api/blobs/"):
        return _BY_PATH["/api/blobs/"]
    return entry


def paths_of(kind: str) -> tuple[OllamaPath, ...]:
    """Return the Ollama paths served one way (``PLAIN``, ``CHECKED`` …), in the table's order."""
    return tuple(entry for entry in OLLAMA_PATHS if entry.kind == kind)
