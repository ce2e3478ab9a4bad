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
from tests.e2e.test_hostile import assert_error_shape

# --- A second model key in another case (smuggled model and options) -------------------------



# --- Model access, everywhere the same (management endpoints, aliases, listings, key cache) ---



# --- Behind nginx, the admin login, and /health -----------------------------------------------



# --- What goes to providers and what comes back; usage that cannot be switched off ------------



# --- The usage store, CSV exports and key expiry ----------------------------------------------



# --- Image URLs, the fetcher's address check, and chat logs -----------------------------------

IMAGE_SURFACES = ["openai", "anthropic", "responses"]


def _image_request(surface: str, urls: list[str]) -> tuple[str, str, dict]:
    """Return (path, error dialect, body) of a chat on ``surface`` showing the images at ``urls``."""
    if surface == "openai":
        parts = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
        return "/v1/chat/completions", "openai", {"model": "llava", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, *parts]}]}
    if surface == "anthropic":
        parts = [{"type": "image", "source": {"type": "url", "url": url}} for url in urls]
        return "/v1/messages", "anthropic", {"model": "llava", "max_tokens": 8, "messages": [{
            "role": "user", "content": [*parts, {"type": "text", "text": "What is this?"}]}]}
    parts = [{"type": "input_image", "image_url": url} for url in urls]
    return "/v1/responses", "openai", {"model": "llava", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"}, *parts]}]}


# IPv6 literals that carry a loopback IPv4 address (NAT64, IPv4-compatible, 6to4, SIIT, Teredo) or are
# local by definition (site-local, local-use NAT64). No network here routes them to 127.0.0.1, so
# the proof is the refusal's reason: checked and refused before any connection is tried.
CARRYING_LOOPBACK = ["[64:ff9b::7f00:1]", "[::127.0.0.1]", "[2002:7f00:1::]", "[::ffff:0:7f00:1]",
                     "[2001:0:808:808:0:0:80ff:fffe]", "[fec0::1]", "[64:ff9b:1::7f00:1]"]


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
def test_image_urls_to_ipv6_addresses_carrying_a_private_one_are_refused(proxy, fake, surface):
    port = int(fake.url.rsplit(":", 1)[1])
    for host in CARRYING_LOOPBACK:
        url = f"http://{host}:{port}/x.png"
        path, dialect, body = _image_request(surface, [url])
        answer = requests.post(proxy.url + path, json=body, headers=auth(), timeout=10)
        assert answer.status_code == 400, f"{url}: {answer.status_code} {answer.text[:300]}"
        assert "a private or local address" in assert_error_shape(dialect, answer), url
    assert fake.requests == []


DEEP = 500  # levels of an unknown field: well within what the JSON parser takes


def _deeply_nested(levels: int) -> list:
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
