"""Every backend and every answer offers what its protocol declares, with signatures that take its calls."""

from __future__ import annotations

import inspect
import io
from inspect import Parameter
from types import SimpleNamespace

import pytest
import urllib3

from ollama_proxy.backends import protocols
from ollama_proxy.backends.ollama import OllamaBackend
from ollama_proxy.backends.openai_compat import ProviderBackend
from ollama_proxy.backends.pool_servers import PooledResponse
from ollama_proxy.backends.protocols import Answer, Backend, OllamaShapedAnswer, PassedThroughAnswer, PassthroughBackend
from ollama_proxy.backends.provider_answer import OllamaAnswer, PassthroughAnswer
from ollama_proxy.backends.upstream_response import UpstreamResponse
from ollama_proxy.config import ProviderSettings, RetrySettings, ServiceSettings
from ollama_proxy.dispatch.dispatcher import OllamaModel
from ollama_proxy.scheduler.transport.admission import Requester

_CONTEXT_METHODS = ("__enter__", "__exit__")


def members(protocol: type) -> tuple[set[str], dict]:
    """Return the names of a protocol's data members and its methods by name, its bases' included."""
    data, methods = set(), {}
    for cls in reversed(protocol.__mro__):
        if cls.__module__ != protocols.__name__:
            continue  # Protocol, Generic, object
        data |= set(vars(cls).get("__annotations__", {}))
        for name, value in vars(cls).items():
            if isinstance(value, property):
                data.add(name)
            elif inspect.isfunction(value) and (not name.startswith("__") or name in _CONTEXT_METHODS):
                methods[name] = value
    return data, methods


def calls(declared: inspect.Signature) -> list[tuple[tuple, dict]]:
    """Return calls a declaration allows: the least it takes, all at once, by keyword, each option alone."""
    params = list(declared.parameters.values())[1:]  # self
    positional = [p for p in params if p.kind in (Parameter.POSITIONAL_ONLY, Parameter.POSITIONAL_OR_KEYWORD)]
    keyword = [p for p in params if p.kind is Parameter.KEYWORD_ONLY]
    required_args = tuple(p.name for p in positional if p.default is Parameter.empty)
    required_kwargs = {p.name: p.name for p in keyword if p.default is Parameter.empty}
    only_positional = tuple(p.name for p in positional if p.kind is Parameter.POSITIONAL_ONLY)
    found = [
        (required_args, required_kwargs),
        (tuple(p.name for p in positional), {p.name: p.name for p in keyword}),
        (only_positional, {p.name: p.name for p in params if p.kind in (Parameter.POSITIONAL_OR_KEYWORD,
                                                                        Parameter.KEYWORD_ONLY)}),
    ]
    for p in params:
        if p.default is not Parameter.empty and p.kind is not Parameter.POSITIONAL_ONLY:
            found.append((required_args, {**required_kwargs, p.name: p.name}))
        if p.kind is Parameter.VAR_POSITIONAL:
            found.append(((*(q.name for q in positional), "more"), required_kwargs))
        if p.kind is Parameter.VAR_KEYWORD:
            found.append((required_args, {**required_kwargs, "unforeseen": 1}))
    return found


def shortcomings(protocol: type, instance: object) -> list[str]:
    """Say where ``instance`` falls short of ``protocol``: a member it lacks, a call it would refuse."""
    data, methods = members(protocol)
    found = [f"no {name}" for name in sorted(data | set(methods)) if not hasattr(instance, name)]
    for name, declared in methods.items():
        if not hasattr(instance, name):
            continue
        implementation = inspect.signature(getattr(instance, name))
        for args, kwargs in calls(inspect.signature(declared)):
            try:
                implementation.bind(*args, **kwargs)
            except TypeError as exc:
                found.append(f"{name}{implementation} refuses ({args}, {kwargs}): {exc}")
    return found


def _raw(content_type: str = "application/x-ndjson") -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=io.BytesIO(b"{}"), headers={"Content-Type": content_type}, status=200,
                                preload_content=False)


def _upstream(content_type: str = "application/x-ndjson") -> UpstreamResponse:
    return UpstreamResponse(_raw(content_type), "Ollama at http://gpu1", 0.0, 5.0)


def _provider() -> ProviderBackend:
    settings = ProviderSettings(name="fakeai", base_url="http://127.0.0.1:9/v1", preset=None, api_key="sk-x",
                                api_key_env=None, models=(), headers={}, model_facts={}, connect_timeout=1.0,
                                read_timeout=1.0, stream_idle_timeout=1.0)
    return ProviderBackend(settings, RetrySettings())


_SERVICE = ServiceSettings("http://127.0.0.1:9", 1.0, 5.0, 5.0, 1.0, 10, 1.0)
_SERVER = SimpleNamespace(name="gpu1", backend=SimpleNamespace(describe="Ollama at http://gpu1"))

CLASSES = {
    "UpstreamResponse": (OllamaShapedAnswer, _upstream),
    "PooledResponse": (OllamaShapedAnswer, lambda: PooledResponse(_upstream(), _SERVER, lambda: None)),
    "OllamaAnswer": (OllamaShapedAnswer, lambda: OllamaAnswer(iter([]), stream=True, fold=lambda chunks: {})),
    "PassthroughAnswer": (PassedThroughAnswer, lambda: PassthroughAnswer(_upstream("text/event-stream"))),
    "OllamaBackend": (Backend, lambda: OllamaBackend(_SERVICE)),
    "OllamaModel": (Backend, lambda: OllamaModel(SimpleNamespace(pool=None), "llama3.2:latest", Requester())),
    "ProviderBackend": (PassthroughBackend, _provider),
}


@pytest.mark.parametrize("name", CLASSES)
def test_each_class_offers_what_its_protocol_declares(name):
    protocol, make = CLASSES[name]
    instance = make()
    try:
        assert shortcomings(protocol, instance) == []
    finally:
        if isinstance(instance, (UpstreamResponse, PooledResponse, PassthroughAnswer)):
            instance.close()


def test_a_protocol_includes_what_its_bases_declare():
    data, methods = members(PassthroughBackend)
    assert {"name", "describe"} <= data and {"open", "encode", "post_json", "open_openai"} <= set(methods)
    data, methods = members(OllamaShapedAnswer)
    assert {"status", "waited", "is_ndjson"} <= data and {"close", "__exit__", "iter_chunks"} <= set(methods)
    assert set(members(Answer)[1]) < set(methods)


class Drifted:
    """A backend that lost an argument, renamed a keyword and forgot a member."""

    name = "drifted"

    def open(self, method, path, *, body=None, headers=None, query="", timeout=None, read_setting=""):
        raise NotImplementedError

    def encode(self, body):
        return body

    def post_json(self, path, body):
        raise NotImplementedError


def test_a_class_that_drifts_from_its_protocol_is_caught():
    found = shortcomings(Backend, Drifted())
    assert found[0] == "no describe"
    assert any(problem.startswith("open") and "timeout_setting" in problem for problem in found)
    assert any(problem.startswith("post_json") and "model_label" in problem for problem in found)
