"""Build the WSGI application: settings, logs, auth, CORS, backends, blueprints."""

from __future__ import annotations

import logging
import os

from flask import Flask, Response, jsonify, render_template, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix

from ollama_proxy import content_encoding, greenlets, ledger, store
from ollama_proxy.access import auth, budgets, ratelimit
from ollama_proxy.backends import health as backend_health
from ollama_proxy.backends.image_fetcher import ImageFetcher
from ollama_proxy.backends.pool import OllamaPool
from ollama_proxy.blueprints import (
    admin,
    anthropic,
    audio,
    embeddings,
    favicon,
    health,
    native,
    openai,
    openapi,
    responses,
)
from ollama_proxy.blueprints import metrics as metrics_endpoint
from ollama_proxy.config import ProviderSettings, Settings, load_settings
from ollama_proxy.dispatch.dispatcher import DISPATCHER, Dispatcher
from ollama_proxy.errors import (
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProxyError,
)
from ollama_proxy.observability import chatlog, logs, metrics, usage
from ollama_proxy.routing import catalog as model_catalog
from ollama_proxy.routing import thinking as model_thinking
from ollama_proxy.routing.routes import ROUTER, Router
from ollama_proxy.scheduler.transport.instance import build_admission
from ollama_proxy.surfaces import surface_of

log = logging.getLogger(__name__)

_HTTP_ERRORS = {404: NotFound, 405: MethodNotAllowed, 413: PayloadTooLarge}


def create_app(settings: Settings | None = None) -> Flask:
    """Create the proxy's Flask app from ``settings`` (default: the configuration file)."""
    settings = settings or load_settings()
    app = Flask(__name__, static_folder=None)  # the admin blueprint serves static/ under /admin
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=settings.limits.max_body_bytes)
    app.json.sort_keys = False
    greenlets.init_app(app)
    content_encoding.init_app(app)  # innermost layer: what every view reads is the decoded body
    ledger.init_app(app, lambda path: surface_of(path).name)
    logs.init_app(app)  # first of the close listeners: the access line is written before any other reads the record
    store.init_app(app)
    usage.init_app(app)
    model_catalog.init_app(app)
    auth.init_app(app)
    ratelimit.init_app(app)  # after auth: it limits the principal auth found
    budgets.init_app(app)  # after the limits: a request they refuse spends nothing
    chatlog.init_app(app)  # after auth and the limits: it logs admitted chats
    if settings.cors.origins:
        CORS(app, origins=list(settings.cors.origins), expose_headers=["X-Request-Id"], max_age=600)
    init_backends(app, settings)
    app.extensions["ollama_proxy.images"] = ImageFetcher(settings.images)
    for blueprint in (health.bp, native.bp, openai.bp, embeddings.bp, audio.bp, responses.bp, anthropic.bp,
                      openapi.bp, favicon.bp):
        app.register_blueprint(blueprint)
    admin.init_app(app)
    if settings.metrics.enabled:
        app.register_blueprint(metrics_endpoint.bp)
        metrics.init_app(app)  # its in-flight count wraps every other layer
    trust_proxies(app, settings.service.trusted_proxies)
    register_error_handlers(app)
    return app


def trust_proxies(app: Flask, hops: int) -> None:
    """Take the client's address, scheme and host from the last ``hops`` proxies' X-Forwarded-* headers.

    Outermost, so the access log, the admin login's counters and every other layer see the
    client nginx saw. With no proxy in front a client's own X-Forwarded-For is a lie: ignored.
    """
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def init_backends(app: Flask, settings: Settings) -> None:
    """Build the Ollama pool, the providers and the router that picks among them."""
    slot_dir = os.path.join(settings.logging.dir, ".slots")
    pool = OllamaPool(settings.service, settings.ollama_servers, settings.routing, slot_dir)
    dispatcher = Dispatcher(pool, build_admission(settings, pool), settings.scheduling.max_wait,
                            settings.scheduling.prompt_placement, settings.scheduling.prompt_cache_isolation)
    providers = {p.name: _provider_backend(p, settings) for p in settings.providers}
    app.extensions["ollama_proxy.pool"] = pool
    app.extensions["ollama_proxy.providers"] = providers
    app.extensions[DISPATCHER] = dispatcher
    app.extensions["ollama_proxy.backend"] = pool.default.backend  # the default server
    app.extensions[ROUTER] = Router(pool, providers, dispatcher)
    model_thinking.init_app(app)
    backend_health.init_app(app)


def _provider_backend(provider: ProviderSettings, settings: Settings):
    from ollama_proxy.backends.openai_compat import ProviderBackend
    return ProviderBackend(provider, settings.retry)


def error_response(error: ProxyError) -> Response:
    """Render ``error`` in the protocol of the request's surface."""
    render = surface_of(request.path).render_error
    if render is None:  # a person in a browser reads these: HTML
        response = Response(render_template("admin/error.html", status=error.status, message=error.message))
    else:
        response = jsonify(render(error))
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


def _from_http_exception(exc: HTTPException) -> Response:
    kind = _HTTP_ERRORS.get(exc.code or 500, ProxyError)
    if exc.code == 404:
        message = f"no such endpoint: {request.method} {request.path}"
    elif isinstance(exc, WerkzeugMethodNotAllowed):
        allowed = ", ".join(m for m in exc.valid_methods or () if m not in ("HEAD", "OPTIONS"))
        message = f"method {request.method} is not allowed on {request.path} (use {allowed})"
    elif exc.code == 413:
        message = f"the request body is larger than the limit ({request.max_content_length} bytes)"
    else:
        message = exc.description or exc.name
    response = error_response(kind(message, status=exc.code))
    if isinstance(exc, WerkzeugMethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _from_unexpected(exc: Exception) -> Response:
    record = ledger.access_record(request.environ)
    request_id = record.request_id if record else "-"
    log.exception("unexpected error in %s %s (request %s)", request.method, request.path, request_id)
    return error_response(ProxyError(f"internal error in the proxy (request id {request_id})"))


def _from_store_failure(exc: store.DatabaseError) -> Response:
    """A store failure no layer answered for itself (each should): a 503 in the surface's shape, said in one line."""
    if isinstance(exc, store.ValueRefused):  # a value the proxy should have made fit: its own fault
        return _from_unexpected(exc)
    record = ledger.access_record(request.environ)
    log.error("the store failed in %s %s (request %s): %s", request.method, request.path,
              record.request_id if record else "-", exc.reason)
    return error_response(ProxyError("the store cannot be reached; try again shortly", status=503))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ProxyError, error_response)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(store.DatabaseError, _from_store_failure)
    app.register_error_handler(Exception, _from_unexpected)
