"""A hostile client with a valid but limited key tries to reach past the access policy.

Every test here drives the real server (gunicorn, gevent workers) over the fake Ollama, which
reads request bodies as Ollama's Go decoder does, and checks that what the upstream runs is
exactly what the policy checked, that every bound holds, and that nothing leaks.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.e2e.conftest import ALICE, auth, base_config

# --- A second model key in another case (smuggled model and options) -------------------------



# --- Model access, everywhere the same (management endpoints, aliases, listings, key cache) ---



# --- Behind nginx, the admin login, and /health -----------------------------------------------



# --- What goes to providers and what comes back; usage that cannot be switched off ------------



# --- The usage store, CSV exports and key expiry ----------------------------------------------



# --- Image URLs, the fetcher's address check, and chat logs -----------------------------------

DEEP = 500  # levels of an unknown field: well within what the JSON parser takes


def _deeply_nested(levels: int) -> dict:
    return json.loads("[" * levels + "]" * levels)


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/messages", {"model": "llama3.2", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
], ids=["openai", "anthropic"])
def test_a_deeply_nested_unknown_field_is_answered_and_logged(start_proxy, fake, path, body):
    config = base_config(fake.url)
    config["chat_logs"] = {"enabled": True}
    proxy = start_proxy(config, workers=1)
    answer = requests.post(proxy.url + path, json={**body, "x": _deeply_nested(DEEP)}, headers=auth(ALICE),
                           timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    chat_log = proxy.log_dir / "chat.jsonl"
    deadline = time.monotonic() + 10
    while not (chat_log.exists() and chat_log.read_text().strip()):
        assert time.monotonic() < deadline, "no chat log line was written"
        time.sleep(0.05)
    line = json.loads(chat_log.read_text().splitlines()[0])
    assert (line["path"], line["status"]) == (path, 200)
    assert line["request"]["x"] == _deeply_nested(DEEP)
