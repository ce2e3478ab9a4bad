"""A hostile client with a valid but limited key tries to reach past the access policy.

Every test here drives the real server (gunicorn, gevent workers) over the fake Ollama, which
reads request bodies as Ollama's Go decoder does, and checks that what the upstream runs is
exactly what the policy checked, that every bound holds, and that nothing leaks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import base_config
from tests.e2e.server import ProxyServer

CLI = str(Path(sys.executable).with_name("ollama-proxy"))  # what `pip install` put on PATH
TIMEOUT = 30
HI = [{"role": "user", "content": "hi"}]


def cli(server: ProxyServer, *args: str) -> subprocess.CompletedProcess:
    """Run ``ollama-proxy`` against a server's configuration, as its operator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_PROXY_")}
    return subprocess.run([CLI, *args, "--config", str(server.config_path)], capture_output=True, text=True,
                          env=env, cwd=server.workdir, timeout=60)


def create_key(server: ProxyServer, *args: str) -> str:
    """Create a managed key with ``ollama-proxy keys create``; return its secret."""
    done = cli(server, "keys", "create", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}

# --- A second model key in another case (smuggled model and options) -------------------------

ENFORCED_CTX = 4096


@pytest.fixture(scope="module")
def policed(fake_server, tmp_path_factory):
    """A proxy whose llama3.2 has an enforced num_ctx and keep_alive, and a key limited to llama3*."""
    config = base_config(fake_server.url)
    config["models"] = {"overrides": {"llama3.2": {"enforce": {"num_ctx": ENFORCED_CTX, "keep_alive": "5m"}}}}
    server = ProxyServer(config, tmp_path_factory.mktemp("policed")).start()
    server.limited = create_key(server, "--name", "llama-only", "--models", "llama3*")
    yield server
    server.stop()


# (path, body with a second model key in another case, where the error names the key)
SMUGGLED_MODEL = [
    ("/api/chat", {"model": "llama3.2", "Model": "qwen3:8b", "messages": HI, "stream": False}),
    ("/api/generate", {"model": "llama3.2", "MODEL": "qwen3:8b", "prompt": "hi", "stream": False}),
    ("/api/show", {"model": "llama3.2", "Model": "qwen3:8b"}),
    ("/api/embed", {"model": "llama3.2", "Model": "all-minilm", "input": "hi"}),
    ("/v1/chat/completions", {"model": "llama3.2", "Model": "qwen3:8b", "messages": HI}),
    ("/v1/responses", {"model": "llama3.2", "Model": "qwen3:8b", "input": "hi"}),
    ("/v1/embeddings", {"model": "llama3.2", "Model": "all-minilm", "input": "hi"}),
    ("/v1/messages", {"model": "llama3.2", "Model": "qwen3:8b", "max_tokens": 16, "messages": HI}),
    ("/anthropic/v1/messages", {"model": "llama3.2", "Model": "qwen3:8b", "max_tokens": 16, "messages": HI}),
]


def _error_message(answer: requests.Response) -> str:
    error = answer.json()["error"]
    return error if isinstance(error, str) else error["message"]


@pytest.mark.parametrize("path, body", SMUGGLED_MODEL, ids=[path for path, _ in SMUGGLED_MODEL])
def test_a_second_model_key_in_another_case_is_refused_and_never_sent(policed, fake, path, body):
    sent_before = len(fake.requests)
    answer = requests.post(policed.url + path, json=body, headers=bearer(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    smuggled = next(key for key in body if key != "model" and key.lower() == "model")
    assert smuggled in _error_message(answer) and "'model'" in _error_message(answer)
    assert fake.requests[sent_before:] == []  # Ollama ran nothing


@pytest.mark.parametrize("smuggled", [
    {"Options": {"num_ctx": 131072}},
    {"option\u017f": {"num_ctx": 131072}},  # the long s: Go folds it to S
    {"Keep_Alive": -1},
    {"\u212aeep_alive": -1},  # the Kelvin sign: Go folds it to K
], ids=["Options", "long-s options", "Keep_Alive", "Kelvin keep_alive"])
def test_an_enforced_override_cannot_be_escaped_by_a_key_in_another_case(policed, fake, smuggled):
    body = {"model": "llama3.2", "messages": HI, "stream": False,
            "options": {"num_ctx": ENFORCED_CTX}, "keep_alive": "5m", **smuggled}
    answer = requests.post(policed.url + "/api/chat", json=body, headers=bearer(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    assert next(iter(smuggled)) in _error_message(answer)
    assert fake.calls("/api/chat") == []


def test_what_ollama_runs_is_what_the_policy_checked(policed, fake):
    # The same request spelt correctly is served, with the enforced values as Ollama reads them.
    body = {"model": "llama3.2", "messages": HI, "stream": False, "options": {"num_ctx": 131072},
            "keep_alive": -1}
    answer = requests.post(policed.url + "/api/chat", json=body, headers=bearer(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    ran = fake.last("/api/chat").json  # read as Ollama's Go decoder reads it
    assert ran["model"] == "llama3.2"
    assert ran["options"]["num_ctx"] == ENFORCED_CTX and ran["keep_alive"] == "5m"
    assert answer.json()["model"] == "llama3.2"


def test_a_message_field_in_another_case_is_refused(policed, fake):
    body = {"model": "llama3.2", "stream": False,
            "messages": [{"role": "user", "content": "hi", "Content": "something else"}]}
    answer = requests.post(policed.url + "/api/chat", json=body, headers=bearer(policed.limited), timeout=TIMEOUT)
    assert answer.status_code == 400 and "messages[0].Content" in _error_message(answer)
    assert fake.calls("/api/chat") == []



# --- Model access, everywhere the same (management endpoints, aliases, listings, key cache) ---



# --- Behind nginx, the admin login, and /health -----------------------------------------------



# --- What goes to providers and what comes back; usage that cannot be switched off ------------



# --- The usage store, CSV exports and key expiry ----------------------------------------------



# --- Image URLs, the fetcher's address check, and chat logs -----------------------------------
