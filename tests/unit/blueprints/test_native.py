import pytest
from werkzeug.exceptions import MethodNotAllowed

from ollama_proxy.app import create_app
from ollama_proxy.config import parse_settings


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    settings = parse_settings({"logging": {"dir": str(tmp_path_factory.mktemp("logs"))}}, environ={})
    return create_app(settings).url_map.bind("proxy")


@pytest.mark.parametrize("method, path, endpoint", [
    ("POST", "/api/chat", "native./api/chat"),
    ("GET", "/api/status", "native./api/status"),
    ("POST", "/api/experimental/web_search", "native./api/experimental/web_search"),
    ("POST", "/api/me", "native./api/me"),
    ("POST", "/api/blobs/sha256:00", "native.blob"),
    ("PUT", "/api/experimental/next-thing", "native.forward_other"),
    ("DELETE", "/api/user/keys/abc", "native.forward_other"),
    ("GET", "/api/chat/", "native.forward_other"),  # not the proxy's /api/chat: Ollama's to judge
    ("GET", "/api/blobs", "native.forward_other"),
    ("POST", "/v1/audio/transcriptions", "audio.transcriptions"),
])
def test_every_native_path_has_a_rule_routes_ollama_adds_later_the_catch_all(routes, method, path, endpoint):
    assert routes.match(path, method=method)[0] == endpoint


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/api/chat", {"POST", "OPTIONS"}),
    ("GET", "/api/me", {"POST", "OPTIONS"}),
    ("PUT", "/api/blobs/sha256:00", {"HEAD", "POST", "OPTIONS"}),
    ("POST", "/api/tags", {"GET", "HEAD", "OPTIONS"}),
])
def test_a_path_of_the_proxys_own_asked_with_another_method_is_its_405_not_forwarded(routes, method, path, allowed):
    with pytest.raises(MethodNotAllowed) as refused:
        routes.match(path, method=method)
    assert set(refused.value.valid_methods) == allowed
    assert set(routes.allowed_methods(path)) == allowed  # what OPTIONS answers
