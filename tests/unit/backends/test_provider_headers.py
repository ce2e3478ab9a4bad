import pytest

from ollama_proxy.backends.provider_headers import from_provider, own_headers, retry_after, to_provider


@pytest.mark.parametrize("client, sent", [
    ([("Accept", "text/event-stream")], {"Accept": "text/event-stream"}),
    ([("Authorization", "Bearer proxy-token"), ("Cookie", "s=1"), ("X-Api-Key", "k")], {}),
    ([("X-Forwarded-For", "10.0.0.7"), ("X-Real-IP", "10.0.0.7"), ("Forwarded", "for=10.0.0.7")], {}),
    ([("OpenAI-Organization", "org-other"), ("OpenAI-Project", "proj_other"), ("OpenAI-Beta", "x")], {}),
    ([("User-Agent", "OpenAI/Python 1.0"), ("X-Stainless-OS", "Linux"), ("X-Request-Id", "abc")], {}),
])
def test_only_allowed_client_headers_go_to_a_provider(client, sent):
    assert to_provider(client) == sent


@pytest.mark.parametrize("answer, passed", [
    ([("Content-Type", "text/event-stream"), ("x-request-id", "req_1")],
     {"Content-Type": "text/event-stream", "X-Upstream-Request-Id": "req_1"}),
    ([("set-cookie", "__cf_bm=1"), ("openai-organization", "org-1"), ("openai-project", "proj_1")], {}),
    ([("x-ratelimit-remaining-tokens", "9"), ("x-ratelimit-limit-requests", "500"), ("openai-processing-ms", "7")],
     {}),
    ([("Server", "cloudflare"), ("CF-RAY", "8a"), ("Access-Control-Allow-Origin", "*"), ("Via", "1.1 x")], {}),
])
def test_only_allowed_provider_headers_come_back(answer, passed):
    assert from_provider(answer) == passed


def test_the_backends_own_headers_win_over_configured_ones():
    headers = own_headers("sk-1", "org-1", "proj_1", {"Authorization": "x", "X-Title": "proxy"})
    assert headers == {"Authorization": "Bearer sk-1", "X-Title": "proxy", "Content-Type": "application/json",
                       "Accept-Encoding": "identity", "OpenAI-Organization": "org-1", "OpenAI-Project": "proj_1"}
    assert "OpenAI-Organization" not in own_headers(None, None, None, {})


@pytest.mark.parametrize("value, expected", [("3", 3.0), ("0.5", 0.5), (None, None), ("soon", None), ("-1", 0.0),
                                             ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0)])
def test_retry_after(value, expected):
    assert retry_after(value) == expected
