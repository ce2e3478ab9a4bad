"""The pool bound to a model: the model's own timeout, and bodies serialised once."""

from types import SimpleNamespace

import pytest

from ollama_proxy.backends.ollama import PoolTarget


class RecordingPool:
    """Answers ``open`` with what PoolTarget sent it; the default server's connect timeout is 5 s."""

    default = SimpleNamespace(backend=SimpleNamespace(settings=SimpleNamespace(connect_timeout=5.0)))

    def open(self, model, method, path, requester=None, **request):
        self.requester = requester
        return model, request


@pytest.mark.parametrize("read_timeout, request_fields, sent", [
    ((900, "models.overrides.llava.enforce.timeout"), {},
     {"timeout": (5.0, 900), "timeout_setting": "models.overrides.llava.enforce.timeout"}),
    (None, {}, {}),  # the server's own: service.read_timeout
    ((900, "models.defaults.timeout"), {"timeout": (1, 1), "timeout_setting": "service.health_timeout"},
     {"timeout": (1, 1), "timeout_setting": "service.health_timeout"}),  # a caller's own bound wins
])
def test_a_models_timeout_goes_to_the_pool_with_the_setting_it_comes_from(read_timeout, request_fields, sent):
    target = PoolTarget(RecordingPool(), "llava:latest", read_timeout)
    assert target.open("POST", "/api/chat", **request_fields) == ("llava:latest", sent)


class Upstream:
    def raise_for_error(self) -> None:
        pass


class BodyRecordingPool:
    """Keeps the body of every request PoolTarget opens on it."""

    def __init__(self):
        self.sent = []

    def open(self, model, method, path, **request):
        self.sent.append(request["body"])
        return Upstream()


def test_a_body_already_serialised_goes_to_the_server_as_it_is():
    pool = BodyRecordingPool()
    data = b'{"model":"llama3.2:latest","stream":true}'
    PoolTarget(pool, "llama3.2:latest").post_json("/api/chat", data)
    assert pool.sent == [data] and pool.sent[0] is data


def test_the_requester_goes_to_the_pool_for_the_scheduler():
    pool, who = RecordingPool(), object()
    PoolTarget(pool, "llava:latest", None, who).open("POST", "/api/chat")
    assert pool.requester is who
