"""Teams through the real server (two workers): a key never gets more than its team; a team's limit is shared."""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.e2e.command import cli, create_key
from tests.e2e.conftest import base_config


def test_a_teams_keys_share_its_models_and_its_limits_across_workers(start_proxy, fake):
    proxy = start_proxy(base_config(fake.url), workers=2)
    made = cli(proxy, "teams", "create", "research", "--models", "llama3*", "--rpm", "4")
    assert made.returncode == 0, made.stderr
    ada = create_key(proxy, "--name", "ada", "--team", "research")
    bob = create_key(proxy, "--name", "bob", "--team", "research", "--models", "llama3*", "--models", "qwen3*",
                     "--rpm", "100")

    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=bob, max_retries=0) as client:
        with pytest.raises(openai.PermissionDeniedError, match="of team 'research' may not use the model 'qwen3:8b'"):
            client.chat.completions.create(model="qwen3:8b", messages=[{"role": "user", "content": "hi"}])
    answers = []
    for secret in (ada, bob, ada, bob, ada):
        answers.append(requests.post(proxy.url + "/api/chat", headers={"Authorization": f"Bearer {secret}"},
                                     json={"model": "llama3.2", "stream": False,
                                           "messages": [{"role": "user", "content": "hi"}]}, timeout=30))
    # The refused qwen3 request counted too: the team's 4 are the refusal and three of these.
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refusal = answers[3]
    assert "team 'research' sent its 4 requests per minute" in refusal.json()["error"]
    assert int(refusal.headers["Retry-After"]) >= 1 and refusal.headers["x-ratelimit-limit-requests"] == "4"

    listed = cli(proxy, "teams", "list", "--format", "json")
    assert json.loads(listed.stdout)[0]["keys"] == ["ada", "bob"]
    trail = json.loads(cli(proxy, "audit", "--format", "json").stdout)
    assert [(e["action"], e["target"]) for e in trail] == [("team.create", "research"), ("key.create", "ada"),
                                                           ("key.create", "bob")]
    assert trail[1]["after"]["team"] == "research"
