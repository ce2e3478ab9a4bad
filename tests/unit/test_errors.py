import pytest

from ollama_proxy import errors as e


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


@pytest.mark.parametrize("error, ollama, openai, anthropic", [
    (e.InvalidRequest("bad", param="messages[0]"), {"error": "bad"},
     {"error": {"message": "bad", "type": "invalid_request_error", "param": "messages[0]", "code": None}},
     {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}),
    (e.Unauthorized("who"), {"error": "who"},
     {"error": {"message": "who", "type": "authentication_error", "param": None, "code": None}},
     {"type": "error", "error": {"type": "authentication_error", "message": "who"}}),
    (e.Forbidden("no"), {"error": "no"},
     {"error": {"message": "no", "type": "permission_error", "param": None, "code": None}},
     {"type": "error", "error": {"type": "permission_error", "message": "no"}}),
    (e.NotFound("gone", code="model_not_found"), {"error": "gone"},
     {"error": {"message": "gone", "type": "invalid_request_error", "param": None, "code": "model_not_found"}},
     {"type": "error", "error": {"type": "not_found_error", "message": "gone"}}),
    (e.PayloadTooLarge("big"), {"error": "big"},
     {"error": {"message": "big", "type": "invalid_request_error", "param": None, "code": None}},
     {"type": "error", "error": {"type": "request_too_large", "message": "big"}}),
    (e.RateLimited("slow", retry_after=3), {"error": "slow"},
     {"error": {"message": "slow", "type": "rate_limit_error", "param": None, "code": None}},
     {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}),
    (e.UpstreamUnavailable("down"), {"error": "down"},
     {"error": {"message": "down", "type": "api_error", "param": None, "code": None}},
     {"type": "error", "error": {"type": "api_error", "message": "down"}}),
    (e.UpstreamTimeout("late"), {"error": "late"},
     {"error": {"message": "late", "type": "api_error", "param": None, "code": None}},
     {"type": "error", "error": {"type": "timeout_error", "message": "late"}}),
    (e.Overloaded("full"), {"error": "full"},
     {"error": {"message": "full", "type": "api_error", "param": None, "code": None}},
     {"type": "error", "error": {"type": "overloaded_error", "message": "full"}}),
    (e.UpstreamError("teapot", status=418), {"error": "teapot"},
     {"error": {"message": "teapot", "type": "invalid_request_error", "param": None, "code": None}},
     {"type": "error", "error": {"type": "invalid_request_error", "message": "teapot"}}),
])
def test_each_surface_renders_errors_in_its_own_shape(error, ollama, openai, anthropic):
    assert e.to_ollama_error(error) == ollama
    assert e.to_openai_error(error) == openai
    assert e.to_anthropic_error(error) == anthropic


def test_every_error_class_has_a_client_or_server_status():
    for cls in _all_subclasses(e.ProxyError):
        assert 400 <= cls.status < 600, cls


def test_upstream_status_is_kept():
    assert e.UpstreamError("x", status=404).status == 404
    assert e.RateLimited("x", retry_after=2.5).retry_after == 2.5
