"""Hostile input on every endpoint: fuzzed and malformed bodies, oversized requests, SSRF image URLs, leaks.

Whatever a client sends, the proxy answers quickly, below 500, in the caller's own error shape,
and writes no traceback; requests gunicorn refuses before the app runs (a request line or headers
over its limits) get gunicorn's own 4xx. Nothing here may reach a private address on the
proxy's behalf, and no token may ever reach a log.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import ALICE, GENERATE, MANAGE, MAX_BODY, SECRETS, auth, base_config
from tests.e2e.server import ProxyServer
from tests.e2e.surfaces import IMAGE_SURFACES, assert_error_shape, image_request
from tests.fakes.ollama import FakeOllama

TIMEOUT = 10  # seconds: every answer here must come long before; a hang fails the test
BLOB = f"/api/blobs/sha256:{'ab' * 32}"

# (method, path, error dialect) of every endpoint that takes a body
ENDPOINTS = [
    *[("POST", path, "ollama") for path in ("/api/show", "/api/generate", "/api/chat", "/api/embed",
                                            "/api/embeddings", "/api/pull", "/api/push", "/api/create",
                                            "/api/copy")],
    ("DELETE", "/api/delete", "ollama"),
    ("POST", BLOB, "ollama"),
    *[("POST", path, "openai") for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                            "/v1/responses")],
    *[("POST", path, "anthropic") for path in ("/v1/messages", "/v1/messages/count_tokens")],
]
JSON_ENDPOINTS = [e for e in ENDPOINTS if e[1] != BLOB]
ONE_PER_DIALECT = [("POST", "/api/chat", "ollama"), ("POST", "/v1/chat/completions", "openai"),
                   ("POST", "/v1/messages", "anthropic")]


def _ids(endpoints):
    return [f"{method} {path}" for method, path, _ in endpoints]


# Checking answers


def assert_sane(dialect: str, answer: requests.Response) -> None:
    """Check any answer: below 500, errors in the dialect's shape, streams made of whole frames."""
    assert answer.status_code < 500, f"{answer.status_code}: {answer.text[:500]}"
    assert "Traceback" not in answer.text
    kind = answer.headers.get("Content-Type", "")
    if answer.status_code >= 400:
        assert_error_shape(dialect, answer)
    elif kind.startswith("application/x-ndjson"):
        for line in answer.text.splitlines():
            json.loads(line)
    elif kind.startswith("text/event-stream"):
        for line in answer.text.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                json.loads(line.removeprefix("data: "))
    elif kind.startswith("application/json"):
        json.loads(answer.content)


class Logs:
    """The part of a proxy's stderr and error log written since the last ``mark``."""

    def __init__(self, proxy: ProxyServer):
        self.paths = [proxy.stderr_path, proxy.log_dir / "error.log"]
        self.mark()

    def mark(self) -> None:
        self.offsets = {p: p.stat().st_size if p.exists() else 0 for p in self.paths}

    def new(self) -> str:
        return "".join(p.read_bytes()[self.offsets[p]:].decode(errors="replace") for p in self.paths if p.exists())

    def assert_no_traceback(self) -> None:
        text = self.new()
        assert "Traceback" not in text and "Logging error" not in text, text[-4000:]


@pytest.fixture
def logs(proxy) -> Logs:
    return Logs(proxy)


def send(proxy: ProxyServer, method: str, path: str, data: bytes | None = None, headers: dict | None = None,
         **kwargs) -> requests.Response:
    return requests.request(method, proxy.url + path, data=data,
                            headers={**auth(MANAGE), "Content-Type": "application/json", **(headers or {})},
                            timeout=TIMEOUT, **kwargs)


# Fuzzing. Values are built from the words the translators look for, so that fuzzed bodies get
# past the first checks and into the translators, not only into the JSON parser.

FIELDS = ["model", "messages", "role", "content", "prompt", "stream", "type", "text", "image_url", "url",
          "images", "tools", "tool_calls", "function", "name", "arguments", "input", "max_tokens", "options",
          "format", "system", "source", "data", "media_type", "tool_choice", "stop", "temperature", "think",
          "reasoning", "effort", "instructions", "suffix", "encoding_format", "dimensions", "response_format",
          "json_schema", "schema", "stream_options", "include_usage", "logprobs", "top_logprobs", "keep_alive",
          "tool_use_id", "id", "call_id", "output", "thinking", "budget_tokens", "max_output_tokens", "from",
          "files", "destination", "insecure", "truncate", "detail", "input_schema", "parameters", "is_error",
          "previous_response_id", "store", "background", "metadata", "echo", "seed", "reasoning_content",
          "tool_call_id", "max_completion_tokens", "reasoning_effort", "exclude_reasoning", "quantize",
          "stop_sequences", "top_k", "top_p", "summary", "status", "file_id", "input_audio", "file"]
WORDS = ["llama3.2", "qwen3:8b", "llava", "all-minilm", "no-such-model", "user", "assistant", "system",
         "developer", "tool", "function", "text", "image_url", "image", "input_text", "input_image", "output_text",
         "function_call", "function_call_output", "reasoning", "message", "tool_use", "tool_result", "thinking",
         "redacted_thinking", "document", "base64", "url", "json_object", "json_schema", "auto", "none",
         "required", "any", "float", "high", "low", "minimal", "enabled", "disabled", "adaptive",
         "data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64,!!!", "data:,", "data:text/plain;base64,QQ==",
         "http://127.0.0.1:9/a.png", "https://[::1]/a.png", "{\"city\": ", "{}", "5m", "0", "-1", " "]
leaves = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
          | st.sampled_from(WORDS))
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6),
                                                                inner, max_size=5),
    max_leaves=24,
)
# "n" runs n generations: it gets small values here, and a test of its own below.
bodies = values | st.fixed_dictionaries(
    {"model": st.sampled_from(WORDS[:5]) | values},
    optional={**{name: values for name in FIELDS if name != "model"},
              "n": st.integers(-1, 3) | st.sampled_from([None, "2", 1.5, True])},
)


def fuzz_settings(examples: int):
    return settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_a_model_field_that_is_not_a_name_goes_on_to_ollama(proxy, fake, logs):
    # Found by the fuzzer below: "from" is no field of a delete, and a list there broke the provider check.
    logs.mark()
    answer = send(proxy, "DELETE", "/api/delete", json.dumps({"model": "llama3.2", "from": [None]}).encode())
    assert_sane("ollama", answer)
    assert fake.last("/api/delete").json == {"model": "llama3.2", "from": [None]}
    logs.assert_no_traceback()


@pytest.mark.parametrize("method, path, dialect", ENDPOINTS, ids=_ids(ENDPOINTS))
@fuzz_settings(30)
@given(body=bodies)
def test_fuzzed_json_bodies_get_a_sane_answer(proxy, fake, logs, method, path, dialect, body):
    logs.mark()
    answer = send(proxy, method, path, json.dumps(body).encode())
    assert_sane(dialect, answer)
    logs.assert_no_traceback()


@pytest.mark.parametrize("method, path, dialect", ENDPOINTS, ids=_ids(ENDPOINTS))
@fuzz_settings(15)
@given(data=st.binary(max_size=300) | st.builds(lambda head, tail: head + tail,
                                                st.sampled_from([b"{", b'{"model": "llama3.2", ', b"[", b'"']),
                                                st.binary(max_size=100)))
def test_fuzzed_bytes_get_a_sane_answer(proxy, fake, logs, method, path, dialect, data):
    logs.mark()
    answer = send(proxy, method, path, data)
    assert_sane(dialect, answer)
    logs.assert_no_traceback()


@fuzz_settings(30)
@given(digest=st.text(min_size=1, max_size=80))
@example(digest="0/")  # forwarded to a path Ollama does not route: its text/plain 404 came back
def test_fuzzed_blob_digests_get_a_sane_answer(proxy, fake, logs, digest):
    logs.mark()
    for method in ("HEAD", "POST"):
        answer = send(proxy, method, "/api/blobs/" + quote(digest, safe=""), b"x")
        assert answer.status_code < 500 and "Traceback" not in answer.text
        if method == "POST" and answer.status_code >= 400:
            assert_error_shape("ollama", answer)
    logs.assert_no_traceback()


# Malformed JSON, aimed


DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"model": "llama3.2", "messages": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}"
HUGE_INT = b"9" * 5000


@pytest.mark.parametrize("method, path, dialect", JSON_ENDPOINTS, ids=_ids(JSON_ENDPOINTS))
@pytest.mark.parametrize("data", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_json_nested_100k_deep_is_a_400(proxy, fake, logs, method, path, dialect, data):
    answer = send(proxy, method, path, data)
    assert answer.status_code == 400, answer.text[:300]
    assert_error_shape(dialect, answer)
    assert fake.requests == []
    logs.assert_no_traceback()


@pytest.mark.parametrize("method, path, dialect, data", [
    ("POST", "/api/generate", "ollama", b'{"model": "llama3.2", "prompt": "x", "options": {"num_ctx": %s}}' % HUGE_INT),
    ("POST", "/api/chat", "ollama", b'{"model": "llama3.2", "messages": [], "keep_alive": -%s}' % HUGE_INT),
    ("POST", "/v1/chat/completions", "openai",
     b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "max_tokens": %s}' % HUGE_INT),
    ("POST", "/v1/completions", "openai", b'{"model": "llama3.2", "prompt": "x", "seed": %s}' % HUGE_INT),
    ("POST", "/v1/messages", "anthropic",
     b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "max_tokens": %s}' % HUGE_INT),
    ("POST", "/v1/responses", "openai", b'{"model": "llama3.2", "input": "x", "max_output_tokens": %s}' % HUGE_INT),
], ids=["native-generate", "native-chat", "openai-chat", "openai-completions", "anthropic", "responses"])
def test_integers_of_5000_digits_are_a_400(proxy, fake, logs, method, path, dialect, data):
    answer = send(proxy, method, path, data)
    assert answer.status_code == 400, answer.text[:300]
    assert_error_shape(dialect, answer)
    logs.assert_no_traceback()


def assert_strict_json_upstream(fake) -> None:
    """Check every body the fake received is RFC 8259 JSON in UTF-8 (no NaN, no Infinity), as Go reads it: a GET
    (the proxy's own listing of models, at any moment) has none."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    for recorded in fake.requests:
        if recorded.method in ("GET", "HEAD"):
            continue
        try:
            json.loads(recorded.body.decode("utf-8"), parse_constant=refuse)
        except ValueError as exc:
            pytest.fail(f"the proxy sent Ollama a body that is not JSON ({exc}): {recorded.method} {recorded.path} "
                        f"{recorded.body[:200]!r}")


@pytest.mark.parametrize("method, path, dialect, data", [
    ("POST", "/v1/chat/completions", "openai",
     b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "temperature": 1e999}'),
    ("POST", "/v1/messages", "anthropic",
     b'{"model": "llama3.2", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}], "top_p": -1e999}'),
    ("POST", "/v1/responses", "openai", b'{"model": "llama3.2", "input": "x", "temperature": NaN}'),
    ("POST", "/api/chat", "ollama",
     b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "options": {"temperature": Infinity}}'),
], ids=["openai-overflow", "anthropic-overflow", "responses-NaN", "native-Infinity"])
def test_non_finite_numbers_never_reach_ollama_as_non_json(proxy, fake, logs, method, path, dialect, data):
    """1e999 is JSON but becomes inf in Python; NaN and Infinity are not JSON. Ollama (Go) takes neither."""
    answer = send(proxy, method, path, data)
    assert answer.status_code < 500
    if answer.status_code >= 400:
        assert_error_shape(dialect, answer)
    assert_strict_json_upstream(fake)
    logs.assert_no_traceback()


@pytest.mark.parametrize("method, path, dialect, data", [
    ("POST", "/api/chat", "ollama", b'{"model": "llama3.2", "messages": [{"role": "user", "content": "\xff\xfe"}]}'),
    ("POST", "/v1/chat/completions", "openai", b'{"model": "\xc3\x28", "messages": [{"role": "user"}]}'),
    ("POST", "/v1/messages", "anthropic",
     b'{"model": "llama3.2", "max_tokens": 8, "messages": [], "x": "\xed\xa0\x80"}'),
    ("POST", "/api/generate", "ollama", b'\x00\x00\x00\x00'),
    ("POST", "/v1/responses", "openai", b'{"model": "llama3.2", "input": "a\x00b"}'),  # raw control character
    ("POST", "/api/embed", "ollama", b'\xef\xbb\xbf{"model": "all-minilm", "input": "x"}'),  # BOM
    ("POST", "/v1/embeddings", "openai", b'{"model": "all-minilm", "input": "x"} trailing'),
    ("POST", "/api/show", "ollama", b'{"model": "llama3.2", "model": 7}'),  # duplicate key, the last one wrong
], ids=["native-invalid-utf8", "openai-invalid-utf8", "anthropic-utf8-surrogate", "nul-bytes", "raw-nul-in-string",
        "bom", "trailing-garbage", "duplicate-key"])
def test_malformed_bytes_are_a_400(proxy, fake, logs, method, path, dialect, data):
    answer = send(proxy, method, path, data)
    assert answer.status_code == 400, answer.text[:300]
    assert_error_shape(dialect, answer)
    assert fake.requests == []
    logs.assert_no_traceback()


@pytest.mark.parametrize("method, path, dialect, data", [
    ("POST", "/api/chat", "ollama",
     b'{"model": "llama3.2", "messages": [{"role": "user", "content": "nul \\u0000 inside"}], "stream": false}'),
    ("POST", "/v1/chat/completions", "openai",
     b'{"model": "llama3.2", "messages": [{"role": "user", "content": "lone \\ud800 surrogate"}]}'),
    ("POST", "/v1/completions", "openai", b'{"model": "llama3.2", "prompt": "lone \\udfff surrogate"}'),
    ("POST", "/v1/messages", "anthropic",
     b'{"model": "llama3.2", "max_tokens": 8, "messages": [{"role": "user", "content": "\\ud83d"}]}'),
    ("POST", "/v1/responses", "openai", b'{"model": "llama3.2", "input": "\\udc80", "stream": true}'),
], ids=["native-nul", "openai-chat-surrogate", "openai-completions-surrogate", "anthropic-surrogate",
        "responses-surrogate"])
def test_escaped_nul_and_lone_surrogates_get_a_sane_answer(proxy, fake, logs, method, path, dialect, data):
    """Escapes that decode to text UTF-8 cannot carry: refused, or sent on as valid UTF-8."""
    answer = send(proxy, method, path, data)
    assert_sane(dialect, answer)
    assert_strict_json_upstream(fake)
    logs.assert_no_traceback()


def test_a_lone_surrogate_in_the_model_name_still_gets_its_access_line(proxy, fake, logs):
    answer = send(proxy, "POST", "/v1/messages/count_tokens",
                  b'{"model": "\\udc80", "messages": [{"role": "user", "content": "hi"}]}')
    assert_sane("anthropic", answer)
    request_id = answer.headers["X-Request-Id"]
    deadline = time.monotonic() + 5
    while not any(request_id in line for line in proxy.access_lines()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(request_id in line for line in proxy.access_lines()), "the access line was lost"
    logs.assert_no_traceback()


def test_n_is_bounded_so_one_request_cannot_start_a_thousand_generations(start_proxy, tmp_path):
    """OpenAI caps n at 128; without a cap one request fans out into n upstream generations."""
    with FakeOllama() as own_fake:  # its own fake: an unbounded fan-out must not flood the shared one
        server = start_proxy(base_config(own_fake.url), workers=1)
        answer = requests.post(server.url + "/v1/chat/completions", headers=auth(), timeout=TIMEOUT, json={
            "model": "llama3.2", "n": 1000, "messages": [{"role": "user", "content": "hi"}]})
        sent = len([r for r in own_fake.requests if r.path == "/api/chat"])
    assert answer.status_code == 400, f"{answer.status_code}, {sent} generations started"
    assert answer.json()["error"]["param"] == "n"
    assert sent == 0


# Oversized and malformed requests


@pytest.mark.parametrize("method, path, dialect", JSON_ENDPOINTS, ids=_ids(JSON_ENDPOINTS))
def test_a_body_2_mib_over_the_limit_is_a_413(proxy, fake, logs, method, path, dialect):
    data = b'{"model": "llama3.2", "prompt": "' + b"x" * (MAX_BODY + 2 * 1024 * 1024) + b'"}'
    started = time.monotonic()
    answer = send(proxy, method, path, data)
    assert answer.status_code == 413
    assert "limit" in assert_error_shape(dialect, answer)
    assert time.monotonic() - started < 5
    assert fake.requests == []
    logs.assert_no_traceback()


@pytest.mark.parametrize("method, path, dialect", ONE_PER_DIALECT, ids=_ids(ONE_PER_DIALECT))
def test_a_chunked_body_without_length_over_the_limit_is_a_413(proxy, fake, logs, method, path, dialect):
    """Without Content-Length the limit must still hold, as a 413, not by cutting the body short."""
    def pieces():
        yield b'{"model": "llama3.2", "stream": false, "prompt": "'
        for _ in range(3):
            yield b"x" * MAX_BODY
        yield b'"}'
    answer = send(proxy, method, path, pieces())
    assert answer.status_code == 413, answer.text[:300]
    assert "limit" in assert_error_shape(dialect, answer)
    assert fake.requests == []
    logs.assert_no_traceback()


def _raw_exchange(proxy: ProxyServer, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes over a bare socket; return what the server answers before it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as sock:
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received or len(received) < received.index(b"\r\n\r\n") + 4 + _length(received):
            piece = sock.recv(65536)
            if not piece:
                break
            received += piece
    return received


def _length(received: bytes) -> int:
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(proxy, fake, logs):
    started = time.monotonic()
    received = _raw_exchange(proxy, (f"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {GENERATE}\r\n"
                                     "Content-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n").encode())
    assert received.startswith(b"HTTP/1.1 413 ")
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["type"] == "error"
    assert time.monotonic() - started < 5
    logs.assert_no_traceback()


@pytest.mark.parametrize("length", ["abc", "-5", "1, 2", "0x10", "99999999999999999999999999"])
def test_a_malformed_content_length_is_a_400_from_gunicorn(proxy, fake, logs, length):
    received = _raw_exchange(proxy, (f"POST /api/chat HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {GENERATE}\r\n"
                                     f"Content-Length: {length}\r\n\r\n").encode(), b"{}")
    status = int(received.split(b" ", 2)[1])
    assert status in (400, 413), received[:300]
    assert b"Traceback" not in received
    assert fake.requests == []
    logs.assert_no_traceback()


@pytest.mark.parametrize("headers, path, status", [
    ({"X-Big": "a" * 64 * 1024}, "/api/tags", 431),
    ({f"X-Header-{i}": "v" for i in range(500)}, "/api/tags", 431),
    ({}, "/api/" + "a" * 10 * 1024, 414),
    ({"Authorization": "Bearer " + "a" * 64 * 1024}, "/v1/models", 431),
], ids=["header-64KiB", "500-headers", "path-10KiB", "token-64KiB"])
def test_oversized_headers_and_request_lines_are_refused_by_gunicorn(proxy, fake, logs, headers, path, status):
    """gunicorn refuses these before the app runs (limit_request_*), with its own short page."""
    answer = requests.get(proxy.url + path, headers={**auth(), **headers}, timeout=TIMEOUT)
    assert answer.status_code == status
    assert "Traceback" not in answer.text and len(answer.content) < 1024
    assert fake.requests == []
    logs.assert_no_traceback()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "multipart/form-data; boundary=zzz", "application/json; charset=latin-1",
                                          "", "image/png"])
def test_a_wrong_content_type_does_not_change_how_the_body_is_read(proxy, fake, logs, content_type):
    data = b'{"model": "llama3.2", "messages": [{"role": "user", "content": "a=b&c=d"}], "stream": false}'
    answer = send(proxy, "POST", "/api/chat", data, headers={"Content-Type": content_type})
    assert_sane("ollama", answer)
    assert answer.status_code in (200, 415)
    if answer.status_code == 200:
        assert fake.last("/api/chat").body == data  # not consumed as a form on the way
    logs.assert_no_traceback()


# Image URLs aimed at the proxy's own network. Each one points at the fake's port where a port
# matters, so a fetch that got through would show up in fake.requests.
#
# Not tested: a redirect from an allowed (public) image server to a private address. It needs a
# proxy with allow_private=False that may reach a public server, which an offline test cannot
# provide (every local server is itself private, and so refused before any redirect).

def _private_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/a.png", f"http://localhost:{port}/a.png", f"https://127.0.0.1:{port}/a.png",
        f"http://[::1]:{port}/a.png", f"http://0.0.0.0:{port}/a.png", f"http://user:pw@127.0.0.1:{port}/a.png",
        f"http://2130706433:{port}/a.png", f"http://0x7f.0.0.1:{port}/a.png", f"http://127.1:{port}/a.png",
        f"http://[::ffff:127.0.0.1]:{port}/a.png",
        "http://10.1.2.3/a.png", "http://172.16.0.1/a.png", "http://192.168.1.1/a.png",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "http://[fe80::1]/a.png",
        "http://100.64.0.1/a.png", "http://[fd00::1]/a.png",
    ]


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_image_urls_to_private_addresses_are_refused(proxy, fake, logs, surface, stream):
    port = int(fake.url.rsplit(":", 1)[1])
    for url in _private_urls(port):
        path, dialect, body = image_request(surface, [url])
        answer = requests.post(proxy.url + path, json={**body, "stream": stream}, headers=auth(), timeout=TIMEOUT)
        assert answer.status_code == 400, f"{url}: {answer.status_code} {answer.text[:300]}"
        assert "private or local" in assert_error_shape(dialect, answer), url
    assert fake.requests == []
    logs.assert_no_traceback()


# Last: no token in any log, after every kind of request above and these.

def test_no_token_is_ever_written_to_a_log(proxy, fake):
    fake.script("qwen3:8b", status=500, error="CUDA error: out of memory")
    fake.script("llama3.2:latest", reply="a b c d", drop_after=2)
    chat = {"model": "llama3.2", "messages": [{"role": "user", "content": f"my key is {ALICE}"}]}
    for secret in SECRETS:
        forms = [{"Authorization": f"Bearer {secret}"}, {"Authorization": secret}, {"x-api-key": secret},
                 {"authorization": f"bearer  {secret} "}, {"X-Api-Key": secret, "Authorization": "Bearer other"},
                 {"Authorization": f"Bearer {secret}x"}, {"Authorization": f"Bearer {secret[:-1]}"},
                 {"x-api-key": f"{secret},{secret}"}, {"X-Request-Id": secret, "x-api-key": secret},
                 {"Authorization": f"Basic {secret}"}, {"Cookie": f"token={secret}", "Origin": "http://evil.example"}]
        for headers in forms:
            h = {**headers, "Content-Type": "application/json"}
            requests.get(proxy.url + "/api/tags", headers=h, timeout=TIMEOUT)
            requests.post(proxy.url + "/api/pull", json={"model": "x"}, headers=h, timeout=TIMEOUT)
            requests.post(proxy.url + "/api/chat", data=b"{bad", headers=h, timeout=TIMEOUT)
            requests.post(proxy.url + "/api/chat", json=chat, headers=h, timeout=TIMEOUT)  # cut mid-stream
            requests.post(proxy.url + "/v1/chat/completions", json={**chat, "model": "qwen3:8b"}, headers=h,
                          timeout=TIMEOUT)  # upstream 500
            requests.post(proxy.url + "/v1/messages", json={**chat, "max_tokens": 8, "stream": True}, headers=h,
                          timeout=TIMEOUT)
            requests.post(proxy.url + "/v1/responses", json={"model": "nope", "input": "x"}, headers=h,
                          timeout=TIMEOUT)
            requests.get(proxy.url + f"/v1/nothing?api_key={secret}", headers=h, timeout=TIMEOUT)
        requests.get(proxy.url + f"/api/{secret}", headers=auth(secret), timeout=TIMEOUT)
        requests.get(proxy.url + "/api/tags", headers={**auth(secret), "X-Big": "a" * 20000}, timeout=TIMEOUT)
        image = image_request("openai", [f"http://{secret}:{secret}@127.0.0.1:9/a.png"])
        requests.post(proxy.url + image[0], json=image[2], headers=auth(secret), timeout=TIMEOUT)
    time.sleep(0.5)  # access lines are written as each response closes
    assert len(proxy.access_lines()) >= len(SECRETS) * 11 * 8
    assert (proxy.log_dir / "error.log").exists(), "the failures above should have been logged"
    files = sorted(p for p in proxy.log_dir.rglob("*") if p.is_file()) + [proxy.stderr_path]
    for path in files:
        text = path.read_text(errors="replace")
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {path.name}: " + next(
                line for line in text.splitlines() if secret in line)
