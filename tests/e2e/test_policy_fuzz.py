"""A fuzzer plays a hostile client with a key limited to ``llama3*``: nothing it sends makes Ollama run more.

Requests are built from the ways Ollama's Go decoder reads a body: the model key spelt in any
case, with characters written as ``\\u`` escapes, given two or three times in any order (the last
one Go reads wins), values escaped or in another spelling of a name; the options the proxy
enforces given again under a key Go folds onto ``options`` (another case, an escape, the long s);
bodies gzip-compressed. Each goes to every JSON surface (native, OpenAI, Anthropic, Responses)
of the real server in front of the fake Ollama, which reads bodies as Go does. After each request,
every request the fake received is checked: the model it ran is one the key may use, with the
options the proxy enforces; the proxy answered without a 5xx.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.command import create_key
from tests.e2e.conftest import auth, base_config
from tests.e2e.server import ProxyServer
from tests.go_reader import models_run

TIMEOUT = 30
EXAMPLES = 400
ENFORCED_CTX = 4096
HI = [{"role": "user", "content": "hi"}]
ALLOWED = ["llama3.2", "llama3.2:latest", "LLAMA3.2"]
FORBIDDEN = ["qwen3:8b", "registry.ollama.ai/library/qwen3:8b", "Qwen3:8B", "all-minilm", "gpt-oss:120b-cloud",
             "secret-70b", "llama3.2/library/qwen3:8b", " qwen3:8b"]

# path -> the body's other fields (the model is added by the fuzzer)
SURFACES = {
    "/api/chat": {"messages": HI, "stream": False},
    "/api/generate": {"prompt": "hi", "stream": False},
    "/api/embed": {"input": "hi"},
    "/api/show": {},
    "/v1/chat/completions": {"messages": HI},
    "/v1/completions": {"prompt": "hi"},
    "/v1/embeddings": {"input": "hi"},
    "/v1/responses": {"input": "hi"},
    "/v1/messages": {"max_tokens": 16, "messages": HI},
}
# Go's case folding also matches these to ASCII letters: the long s to s, the Kelvin sign to k.
GO_FOLDS = {"s": ["S", "\u017f"], "k": ["K", "\u212a"]}


def _spelt(name: str) -> st.SearchStrategy[str]:
    """A JSON string literal that Go reads as a key matching ``name``: each letter in any case, or escaped."""
    def letter(char: str) -> st.SearchStrategy[str]:
        forms = [char, char.upper(), *GO_FOLDS.get(char, [])]
        return st.sampled_from(forms).flatmap(lambda form: st.sampled_from([form, f"\\u{ord(form):04x}"]))
    return st.tuples(*[letter(char) for char in name]).map(lambda letters: '"' + "".join(letters) + '"')


def _value(text: str) -> st.SearchStrategy[str]:
    """A JSON string literal of ``text``, some characters escaped."""
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda escaped: '"' + "".join(f"\\u{ord(c):04x}" if e else json.dumps(c)[1:-1]
                                      for c, e in zip(text, escaped, strict=True)) + '"')


@st.composite
def hostile_bodies(draw) -> tuple[str, bytes, dict]:
    """A surface, the body sent, and what shape it had."""
    path = draw(st.sampled_from(sorted(SURFACES)))
    models = draw(st.lists(st.sampled_from(ALLOWED + FORBIDDEN), min_size=1, max_size=3))
    members = [(draw(_spelt("model")), draw(_value(model))) for model in models]
    shape = {"path": path, "models": len(models), "forbidden": any(m in FORBIDDEN for m in models),
             "duplicate key": len(models) > 1, "escaped key": any("\\u" in key for key, _ in members),
             "options": False, "gzip": False}
    if path.startswith("/api/") and path != "/api/show" and draw(st.booleans()):
        for _ in range(draw(st.integers(1, 2))):
            members.append((draw(_spelt("options")), json.dumps({draw(st.sampled_from(["num_ctx", "NUM_CTX"])):
                                                                  draw(st.sampled_from([ENFORCED_CTX, 131072]))})))
        shape["options"] = True
    members += [(json.dumps(key), json.dumps(value)) for key, value in SURFACES[path].items()]
    order = draw(st.permutations(range(len(members))))
    body = ("{" + ",".join(f"{members[i][0]}:{members[i][1]}" for i in order) + "}").encode()
    if draw(st.booleans()):
        body, shape["gzip"] = gzip.compress(body), True
    return path, body, shape


@pytest.fixture(scope="module")
def policed(fake_server, tmp_path_factory):
    """A proxy whose llama3.2 has an enforced num_ctx, and a key limited to llama3*."""
    config = base_config(fake_server.url)
    config["models"] = {"overrides": {"llama3.2": {"enforce": {"num_ctx": ENFORCED_CTX}}}}
    server = ProxyServer(config, tmp_path_factory.mktemp("fuzzed")).start()
    server.limited = create_key(server, "--name", "llama-only", "--models", "llama3*")
    yield server
    server.stop()


def _may_run(model: str) -> bool:
    name = model.lower().removeprefix("registry.ollama.ai/library/")
    return name.startswith("llama3") and "/" not in name and not name.endswith("cloud")


def test_no_spelling_of_a_body_makes_ollama_run_what_the_key_may_not(policed, fake):
    tried: Counter = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(hostile_bodies())
    def fuzz(case):
        path, body, shape = case
        headers = {**auth(policed.limited), "Content-Type": "application/json"}
        if shape["gzip"]:
            headers["Content-Encoding"] = "gzip"
        before = len(fake.requests)
        answer = requests.post(policed.url + path, data=body, headers=headers, timeout=TIMEOUT)
        assert answer.status_code < 500, (path, body, answer.status_code, answer.text)
        for ran in [r for r in fake.requests[before:] if r.method == "POST"]:  # not the listings it reads
            sent = ran.json if isinstance(ran.json, dict) else {}
            assert _may_run(str(sent.get("model", ""))), (path, body, ran.path, sent)
            options = sent.get("options") or {}
            if ran.path in ("/api/chat", "/api/generate", "/api/embed") and "num_ctx" in options:
                assert options["num_ctx"] == ENFORCED_CTX, (path, body, sent)
        tried.update(key for key, value in shape.items() if value is True)
        tried[path] += 1
        tried["requests"] += 1
        tried["served" if answer.status_code == 200 else "refused"] += 1

    fuzz()
    # The fuzzer reached every surface and every shape, and some requests were served, not all refused.
    assert all(tried[path] >= 10 for path in SURFACES), tried
    shapes = ("forbidden", "duplicate key", "escaped key", "options", "gzip", "served", "refused")
    assert all(tried[shape] >= 20 for shape in shapes), tried


# --- Transcription forms -------------------------------------------------------------------------

TRANSCRIBE = "/v1/audio/transcriptions"
BOUNDARY = "fuzz-b0undary"
AUDIO = b"RIFF" + bytes(range(256)) * 4
# Content-Disposition parameters that Go reads as naming the part ``model``, or nearly so.
MODEL_NAMES = ['name="model"', "name=model", 'NAME="model"', "name*=UTF-8''model", "name*=utf-8''mo%64el",
               'name="model"; name="model"', 'name="mod\\el"', 'name="Model"', 'name="model"; filename="x"',
               'filename="x\\"; name=model"', "name*=UTF-8''prompt; name=\"model\""]


@st.composite
def hostile_forms(draw) -> tuple[str, bytes, dict]:
    """A URL query and a form whose parts may name the model in the ways Go reads them, and its shape."""
    parts = [("file", 'Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav',
              AUDIO)]
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 1, 1, 2, 3]))):
        header = draw(st.sampled_from(["Content-Disposition", "content-disposition", "CONTENT-DISPOSITION"]))
        params = draw(st.sampled_from(MODEL_NAMES[:1] * len(MODEL_NAMES) + MODEL_NAMES))  # half plain
        fold = draw(st.sampled_from(["; ", "; ", ";\r\n ", ";\r\n\t"]))
        extra = draw(st.sampled_from(["", "", "", "\r\nContent-Transfer-Encoding: quoted-printable",
                                      "\r\nContent-Type: text/plain; charset=utf-8"]))
        parts.append(("model", f"{header}: form-data{fold}{params}{extra}",
                      draw(st.sampled_from(ALLOWED * 5 + FORBIDDEN)).encode()))
    order = draw(st.permutations(range(len(parts))))
    body = b"".join(f"--{BOUNDARY}\r\n{parts[i][1]}\r\n\r\n".encode() + parts[i][2] + b"\r\n" for i in order)
    body += f"--{BOUNDARY}--\r\n".encode()
    query = draw(st.sampled_from(["", "", "", "model=llama3.2", "model=secret-70b", "MODEL=secret-70b",
                                  "model=%73ecret-70b"]))
    shape = {"model parts": len(parts) - 1, "query": bool(query),
             "forbidden": any(v in body for v in (b"secret", b"qwen", b"cloud")) or "secret" in query}
    return query, body, shape


def test_no_shape_of_a_transcription_form_makes_ollama_run_what_the_key_may_not(policed, fake):
    fake.set_models("llama3.2", "secret-70b", "qwen3:8b")
    tried: Counter = Counter()

    @settings(max_examples=EXAMPLES // 2, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(hostile_forms())
    def fuzz(case):
        query, body, shape = case
        before = len(fake.requests)
        answer = requests.post(policed.url + TRANSCRIBE + (f"?{query}" if query else ""), data=body, timeout=TIMEOUT,
                               headers={**auth(policed.limited),
                                        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        assert answer.status_code < 500, (query, body, answer.status_code, answer.text)
        ran = models_run(r for r in fake.requests[before:] if r.path == TRANSCRIBE)
        assert all(_may_run(model) for model in ran), (query, body, ran)
        tried.update(key for key, value in shape.items() if value)
        tried["requests"] += 1
        tried["served" if answer.status_code == 200 else "refused"] += 1

    fuzz()
    assert all(tried[shape] >= 20 for shape in ("model parts", "query", "forbidden", "served", "refused")), tried
