"""Serve Ollama's native API (``/``, ``/api/*``) by forwarding it to the Ollama server.

The client's body bytes go on untouched once checked, so fields the proxy does
not know still reach Ollama. Streams (NDJSON) are relayed chunk by chunk;
other answers are read whole, so an upstream failure can still get its own
status instead of a truncated body.

Every route under ``/api/`` is forwarded, those Ollama adds later too: a route
the proxy has no rule for goes, as it came, to the server ``X-Ollama-Server``
names (default: the default server), for a manage token (``access.api_routes``).
Web search and fetch go to the default server for a caller with the web
permission, each one logged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from functools import partial
from typing import NoReturn

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import MethodNotAllowed as WrongMethod
from werkzeug.routing import PathConverter

from ollama_proxy.access.api_routes import WEB_TOOLS, check_unlisted_route, check_web_use
from ollama_proxy.backends.blob_upload import upload_body
from ollama_proxy.backends.ollama import OllamaBackend
from ollama_proxy.backends.ollama_headers import upstream_headers
from ollama_proxy.backends.protocols import Backend, OllamaShapedAnswer
from ollama_proxy.content_encoding import body_decoded
from ollama_proxy.dispatch.body import OllamaBody
from ollama_proxy.errors import Forbidden, InvalidRequest, MethodNotAllowed, NotFound
from ollama_proxy.ledger import (
    current_caller,
    current_record,
    note_model,
    note_route,
)
from ollama_proxy.relay.native import failure_logger, ndjson_body, relay
from ollama_proxy.relay.streaming import STREAM_HEADERS
from ollama_proxy.relay.waiting import Opening, ndjson_after_wait, respond_when_open, slots_scheduled
from ollama_proxy.routing.routes import (
    Route,
    body_for,
    note_made_from,
    note_routed,
    refuse_provider_model,
    refuse_unusable_model,
    resolve,
    router,
    visible_listing,
)
from ollama_proxy.schemas.loading import checked_body, read_request_body
from ollama_proxy.schemas.ollama import BODY_SCHEMAS
from ollama_proxy.surfaces import ACCOUNT, BLOBS, CHECKED, LISTING, OLLAMA_PATHS, PLAIN, WEB, ollama_path, paths_of

bp = Blueprint("native", __name__)
log = logging.getLogger(__name__)
_DIGEST = re.compile(r"sha256[:-][0-9a-fA-F]{64}")  # what Ollama itself accepts
BLOBS_PATH = paths_of(BLOBS)[0].path  # /api/blobs/<digest>


# Management requests go to the Ollama server this header names (default: the default server).
SERVER_HEADER = "X-Ollama-Server"
# The methods a native route Ollama adds later may have; it is forwarded as it came, for a manage token.
FORWARDED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def backend() -> OllamaBackend:
    """Return the default Ollama server (service.base_url)."""
    return current_app.extensions["ollama_proxy.backend"]


def _stream_when_open(route: Route, body: OllamaBody) -> Response:
    """Open a stream; one still waiting for its slot after the keepalive interval starts with keepalives."""
    rename = route.model if route.alias else None
    send = partial(route.backend.open, request.method, request.path, body=body,
                   headers=upstream_headers(request.headers.items()), query=request.query_string.decode("latin-1"))

    def opened(upstream: OllamaShapedAnswer) -> Response:
        note_routed(route, upstream)
        return relay(upstream, rename)

    def after_wait(opening: Opening, interval: float) -> Iterable[bytes]:
        record, on_error = current_record(), failure_logger()
        return ndjson_after_wait(opening, request.environ, interval, on_error=on_error,
                                 relay=lambda upstream: ndjson_body(upstream, rename, record, on_error))
    return respond_when_open(send, opened, after_wait, {"Content-Type": "application/x-ndjson", **STREAM_HEADERS})


def _open(target: Backend, body=None) -> OllamaShapedAnswer:
    headers = upstream_headers(request.headers.items())
    return target.open(request.method, request.path, body=body, headers=headers,
                       query=request.query_string.decode("latin-1"))


def _forward(target: Backend, body=None, model: str | None = None) -> Response:
    note_route(target.name, model)
    return relay(_open(target, body))


def forward_plain() -> Response:
    """Forward a request that has no body to the default server."""
    return _forward(backend())


def forward_web() -> Response:
    """Send a web search or fetch to the default server, for a caller allowed to have it reach the internet."""
    principal = current_caller()
    check_web_use(principal, request.path)
    target = backend()
    response = _forward(target, read_request_body(request))  # as it came: Ollama and ollama.com judge it
    record = current_record()
    log.info("web %s for '%s' on Ollama server '%s': %d (request %s)", WEB_TOOLS[request.path],
             getattr(principal, "name", "-"), target.name, response.status_code, record.request_id if record else "-")
    return response


def forward_managed() -> Response:
    """Forward a request as it came, body streamed, to the server X-Ollama-Server names (default: the default)."""
    return _forward(managed_server(), _client_body())


def forward_other(rest: str) -> Response:
    """Forward a native route the proxy has no rule of its own for (one Ollama added later): a manage token's."""
    check_unlisted_route(current_caller(), request.method, request.path)
    target = managed_server()
    note_route(target.name, None)
    upstream = _open(target, _client_body())
    if upstream.status in (404, 405) and upstream.headers.get("Content-Type", "").startswith("text/plain"):
        upstream.close()  # Go's router has no such route either: say so in JSON, as the proxy's own refusals do
        _refuse_as_go_did(upstream.status, upstream.headers.get("Allow", ""))
    return relay(upstream)


def _refuse_as_go_did(status: int, allow: str) -> NoReturn:
    if status == 404:
        raise NotFound(f"no such endpoint: {request.method} {request.path}")
    methods = [method.strip() for method in allow.split(",") if method.strip()]
    if methods:
        raise WrongMethod(valid_methods=methods)
    raise MethodNotAllowed(f"method {request.method} is not allowed on {request.path}")


def _client_body():
    """Return the client's body to stream on, or None when it sent none."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    # A body sent encoded lost its Content-Length when it was decoded: it goes on chunked.
    if request.content_length is None and not chunked and not body_decoded(request.environ):
        return None
    return upload_body(request.stream, request.content_length)


def listing() -> Response:
    """Answer /api/tags or /api/ps with every backend's models the caller may use."""
    body = visible_listing(request.path)
    return Response(b"" if request.method == "HEAD" else json.dumps(body).encode(), 200,
                    {"Content-Type": "application/json; charset=utf-8"})


def forward_checked() -> Response:
    """Check a JSON body against its endpoint's schema, then send it where it belongs."""
    raw = read_request_body(request)
    body, data = checked_body(raw, BODY_SCHEMAS[request.path], current_app.config["SETTINGS"].limits)
    served = ollama_path(request.path)
    model = next((data[field] for field in served.model_fields if data.get(field)), None)
    note_model(model)
    if served.routed:
        return _forward_routed(_route(model), raw, body)
    _check_managed_models(body, served.model_fields)
    target = managed_server()
    response = _forward(target, raw, model)
    if response.status_code == 200 and request.path in _MADE_FROM:
        _note_made(target.name, body, *_MADE_FROM[request.path])
    return response


def _note_made(server: str, body: dict, source: str, made: tuple[str, ...]) -> None:
    """Tell routing a model was made from another on ``server``: a copy of a cloud model is one too."""
    note_made_from(server, body.get(source), next((body[field] for field in made if body.get(field)), None))


# The requests that make a model from another: the field naming the source, those naming the model made.
_MADE_FROM = {"/api/copy": ("source", ("destination",)), "/api/create": ("from", ("model", "name"))}


def _check_managed_models(body: dict, model_fields: tuple[str, ...]) -> None:
    """Refuse a management request naming a model the caller's key may not use, or a provider's model.

    The names are read from the body as sent, which is what Ollama reads, not as
    the schema loaded it: it keeps ``from`` as ``from_``, where a sent ``from_`` key
    would stand in for it.
    """
    action = request.path.removeprefix("/api/")
    for field in model_fields:
        refuse_unusable_model(body.get(field), field)
        refuse_provider_model(body.get(field), action)


def _route(model: str) -> Route:
    try:
        return resolve(model)
    except Forbidden:
        if request.path != "/api/show":
            raise
        # A model the key may not use does not exist for it: as Ollama answers an unknown one.
        raise NotFound(f"model '{model}' not found") from None


def _forward_routed(route: Route, raw: bytes, body: dict) -> Response:
    """Send a model's request to its backend: bytes as they came, unless its name changes."""
    note_routed(route)
    routed = body_for(route, body)
    if route.to_provider:
        upstream = route.backend.post_json(request.path, routed, model_label=route.model)
    else:
        sent = OllamaBody(routed, raw if routed is body else None)
        served = ollama_path(request.path)
        if served.streams and served.scheduled and body.get("stream") is not False and slots_scheduled():
            return _stream_when_open(route, sent)
        upstream = _open(route.backend, sent)
    note_routed(route, upstream)
    return relay(upstream, route.model if route.alias else None)


def managed_server() -> OllamaBackend:
    """Return the Ollama server a management request names in X-Ollama-Server, else the default."""
    pool = current_app.extensions["ollama_proxy.pool"]
    name = request.headers.get(SERVER_HEADER, "").strip()
    if not name:
        return pool.default.backend
    server = pool.server(name)
    if server is None:
        names = ", ".join(s.name for s in pool.servers)
        kind = "a provider" if name in router().providers else "not an Ollama server"
        raise InvalidRequest(f"{SERVER_HEADER}: '{name}' is {kind}; models are managed on: {names}")
    return server.backend


def blob(digest: str) -> Response:
    """Check for, or stream in, a model blob."""
    if not _DIGEST.fullmatch(digest):
        raise InvalidRequest(f"not a blob digest: {digest[:80]!r} (expected sha256:<64 hex digits>)")
    path = BLOBS_PATH + digest
    headers = upstream_headers(request.headers.items())
    if request.method == "POST":
        request.max_content_length = current_app.config["SETTINGS"].limits.max_blob_bytes
        body = upload_body(request.stream, request.content_length)
        return relay(managed_server().open("POST", path, body=body, headers=headers))
    return relay(managed_server().open("HEAD", path, headers=headers))


# How each kind of Ollama path is served (a GET route answers HEAD too).
_VIEWS = {PLAIN: forward_plain, WEB: forward_web, ACCOUNT: forward_managed, LISTING: listing, CHECKED: forward_checked}
for _served in OLLAMA_PATHS:
    if _served.kind in _VIEWS:
        bp.add_url_rule(_served.path, endpoint=_served.path, view_func=_VIEWS[_served.kind], methods=_served.methods)
bp.add_url_rule(BLOBS_PATH + "<path:digest>", view_func=blob, methods=ollama_path(BLOBS_PATH).methods)


def _unlisted(own_paths) -> str:
    """Return the regex of a path after ``/api/`` that is none of ``own_paths``, nor under ``blobs/``."""
    names = "|".join(re.escape(path.removeprefix("/api/")) for path in own_paths if path.startswith("/api/"))
    return rf"(?!(?:{names})\Z)(?!blobs/)[^/].*?"


class UnlistedPath(PathConverter):
    """The rest of an ``/api/`` path that no rule above serves, with any method.

    So a path of the proxy's own, asked with another method, stays its 405 (and
    its OPTIONS lists its own methods), instead of going to Ollama.
    """

    part_isolating = False
    regex = _unlisted(served.path for served in OLLAMA_PATHS if served.kind in _VIEWS)


bp.record_once(lambda state: state.app.url_map.converters.setdefault("unlisted", UnlistedPath))
bp.add_url_rule("/api/<unlisted:rest>", view_func=forward_other, methods=FORWARDED_METHODS)
