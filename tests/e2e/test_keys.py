"""Managed keys made with the installed ``ollama-proxy keys`` command, used by real clients."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime, timezone

import openai
import pytest
import requests

from tests.actors import TESTER
from tests.e2e.command import cli, create_key
from tests.e2e.conftest import base_config
from tests.e2e.server import ProxyServer

CACHE_SECONDS = 0.5


def keys(server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = cli(server, "keys", *args)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def server(fake_server, tmp_path_factory):
    config = base_config(fake_server.url)
    config["auth"]["key_cache_seconds"] = CACHE_SECONDS
    started = ProxyServer(config, tmp_path_factory.mktemp("keys")).start()
    yield started
    started.stop()


def chat(server, secret: str, model: str = "llama3.2") -> str:
    with openai.OpenAI(base_url=server.url + "/v1", api_key=secret, max_retries=0) as client:
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content


def test_a_key_made_with_the_command_works_with_the_openai_sdk(server):
    output = keys(server, "create", "--name", "ada", "--models", "llama3*", "--models", "qwen3:*", "--rpm", "60",
                  "--tpm", "100000").stdout
    secret = output.splitlines()[-1]
    assert secret.startswith("op-") and " " not in secret
    assert "created key 'ada'" in output and "llama3*, qwen3:*" in output
    assert chat(server, secret) == "You said: hi"
    listing = keys(server, "list").stdout.splitlines()
    assert listing[0].split()[:3] == ["name", "prefix", "scope"]
    row = next(line for line in listing if line.startswith("ada"))
    assert secret[:11] in row and "llama3*, qwen3:*" in row and "rpm 60, tpm 100000" in row
    assert "UTC" in row.split("yes", 1)[1]  # last used: just now
    logged = [line for line in server.access_lines() if '"/v1/chat/completions"' in line]
    assert logged and '"token": "ada"' in logged[-1]
    everything = "".join(p.read_text() for p in server.log_dir.iterdir()) + server.stderr()
    assert secret not in everything


def test_disable_enable_and_delete_take_effect_within_the_cache_bound(server):
    secret = create_key(server, "--name", "bob")
    assert chat(server, secret) == "You said: hi"
    keys(server, "disable", "bob")
    time.sleep(CACHE_SECONDS + 0.2)
    with pytest.raises(openai.AuthenticationError, match="key 'bob' is disabled"):
        chat(server, secret)
    keys(server, "enable", "bob")
    time.sleep(CACHE_SECONDS + 0.2)
    assert chat(server, secret) == "You said: hi"
    assert keys(server, "delete", "bob").stdout.strip() == "key 'bob' deleted"
    time.sleep(CACHE_SECONDS + 0.2)
    with pytest.raises(openai.AuthenticationError, match="invalid token"):
        chat(server, secret)


def test_an_expired_key_is_refused(server):
    secret = create_key(server, "--name", "old", "--expires", "2999-12-31")
    store = server.open_store()
    store.update_key("old", expires_at=datetime(2020, 1, 2, tzinfo=timezone.utc), by=TESTER)  # the CLI refuses it
    store.close()
    answer = requests.get(server.url + "/api/tags", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 401
    assert answer.json() == {"error": "key 'old' expired at 2020-01-02T00:00:00+00:00"}


def test_scopes(server):
    generate = create_key(server, "--name", "gen")
    manage = create_key(server, "--name", "ops", "--scope", "manage")
    body = {"model": "llama3.2", "stream": False}
    assert requests.post(server.url + "/api/pull", json=body, headers={"x-api-key": generate}).status_code == 403
    assert requests.post(server.url + "/api/pull", json=body, headers={"x-api-key": manage}).status_code == 200


def test_the_command_reports_mistakes(server):
    create_key(server, "--name", "carol")
    taken = keys(server, "create", "--name", "carol", check=False)
    assert taken.returncode == 1 and "a key named 'carol' exists already" in taken.stderr
    absent = keys(server, "disable", "nobody", check=False)
    assert absent.returncode == 1 and "no key named 'nobody'" in absent.stderr
    bad = keys(server, "create", "--name", "x", "--expires", "soon", check=False)
    assert bad.returncode == 2 and "--expires" in bad.stderr


@pytest.mark.postgres
def test_two_instances_share_keys_through_postgresql(fake, start_proxy, postgres_cluster):
    url = postgres_cluster.new_database()
    instances = []
    for _ in range(2):
        config = base_config(fake.url)
        config["auth"]["key_cache_seconds"] = CACHE_SECONDS
        config["store"] = {"url": url}
        instances.append(start_proxy(config))
    first, second = instances
    secret = create_key(first, "--name", "shared", "--models", "llama3*")
    assert chat(second, secret) == "You said: hi"
    keys(second, "disable", "shared")
    time.sleep(CACHE_SECONDS + 0.2)
    for instance in instances:
        with pytest.raises(openai.AuthenticationError, match="disabled"):
            chat(instance, secret)
    assert "shared" in keys(first, "list").stdout


def test_a_key_made_with_rpm_is_rate_limited(server):
    secret = create_key(server, "--name", "slow", "--rpm", "1")
    assert chat(server, secret) == "You said: hi"
    with pytest.raises(openai.RateLimitError):
        chat(server, secret)
