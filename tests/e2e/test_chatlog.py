"""Opt-in chat logs through the real server: who is logged, what a line holds, rotation."""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import time

import anthropic
import openai
import requests

from tests.e2e.command import create_key
from tests.e2e.conftest import ALICE, GENERATE, MANAGE, auth, base_config
from tests.e2e.server import ROOT
from tests.fakes.openai_provider import PROVIDER_KEY

PNG = base64.b64encode(b"\x89PNG" + b"\x00" * 2044).decode()  # 2,048 bytes


def chat_config(upstream_url: str, **chat_logs) -> dict:
    config = base_config(upstream_url)
    config["auth"]["generate_tokens"][1] = {"name": "alice", "token": ALICE, "chat_log": True}
    config["chat_logs"] = chat_logs
    return config


def chat_lines(proxy, count: int) -> list[dict]:
    path = proxy.log_dir / "chat.jsonl"
    deadline = time.monotonic() + 10
    while len(lines := path.read_text().splitlines() if path.exists() else []) < count:
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    return [json.loads(line) for line in lines]


def test_a_token_that_opted_in_is_logged_with_its_answers(start_proxy, fake):
    proxy = start_proxy(chat_config(fake.url))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=ALICE)
    stream = client.chat.completions.create(model="llama3.2", stream=True, messages=[{"role": "user", "content": [
        {"type": "text", "text": f"look, my key is {MANAGE}"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    claude = anthropic.Anthropic(base_url=proxy.url, api_key=ALICE)
    whole = claude.messages.create(model="llama3.2", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    requests.post(proxy.url + "/api/chat", headers=auth(GENERATE),  # not opted in: not logged
                  json={"model": "llama3.2", "messages": [{"role": "user", "content": "unlogged"}]}).raise_for_status()
    requests.get(proxy.url + "/api/tags", headers=auth(ALICE)).raise_for_status()  # not a chat

    by_path = {line["path"]: line for line in chat_lines(proxy, 2)}  # in the order written: each worker its own
    first, second = by_path["/v1/chat/completions"], by_path["/v1/messages"]
    assert (first["key"], first["path"], first["status"]) == ("alice", "/v1/chat/completions", 200)
    assert first["answer"] == streamed.replace(MANAGE, "***")  # the fake echoed the secret back
    assert streamed.startswith("You said: look")
    parts = first["request"]["messages"][0]["content"]
    assert parts[0]["text"] == "look, my key is ***"
    assert parts[1]["image_url"]["url"] == "<image elided: 2048 bytes>"
    assert re.fullmatch(r"[0-9a-f]{32}", first["request_id"]) and first["ts"].endswith("Z")
    assert (second["path"], second["answer"]) == ("/v1/messages", whole.content[0].text)
    time.sleep(0.5)
    assert len(chat_lines(proxy, 2)) == 2
    assert MANAGE not in (proxy.log_dir / "chat.jsonl").read_text()


def test_the_file_rotates_by_size_and_keeps_its_count(start_proxy, fake):
    proxy = start_proxy(chat_config(fake.url, enabled=True, max_bytes=2000, backup_count=2), workers=2)
    for n in range(40):
        requests.post(proxy.url + "/api/generate", headers=auth(GENERATE), json={
            "model": "llama3.2", "prompt": f"request {n} " + "x" * 100, "stream": n % 2 == 0}).raise_for_status()
    time.sleep(0.5)
    files = sorted(p.name for p in proxy.log_dir.glob("chat.jsonl*"))
    assert files == ["chat.jsonl", "chat.jsonl.1", "chat.jsonl.2"]
    for name in files:
        for line in (proxy.log_dir / name).read_text().splitlines():
            assert json.loads(line)["answer"].startswith("You said: request")


def test_logrotate_leaves_the_chat_log_to_the_proxy():
    globs = re.findall(r"^(/\S+)\s*\{", (ROOT / "deploy" / "logrotate").read_text(), re.M)
    assert globs and not any(fnmatch.fnmatch("/var/log/ollama-proxy/chat.jsonl", g) for g in globs)
    assert any(fnmatch.fnmatch("/var/log/ollama-proxy/access.log", g) for g in globs)


def test_a_managed_key_made_with_chat_log_is_logged_and_others_are_not(start_proxy, fake):
    proxy = start_proxy(base_config(fake.url))  # chat_logs.enabled stays false
    logged, quiet = create_key(proxy, "--name", "logged", "--chat-log"), create_key(proxy, "--name", "quiet")
    for secret, text in ((quiet, "not logged"), (logged, "logged")):
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=secret, max_retries=0)
        client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": text}])
    (line,) = chat_lines(proxy, 1)
    assert (line["key"], line["answer"]) == ("logged", "You said: logged")
    time.sleep(0.5)
    assert len(chat_lines(proxy, 1)) == 1


def test_every_way_an_answer_passes_logs_the_text_the_client_got(start_proxy, fake, provider):
    """Native streamed and whole, n choices side by side, a provider's OpenAI answer passed through."""
    config = chat_config(fake.url, enabled=True)
    config["backends"] = [{"name": "lab", "type": "openai", "base_url": provider.base_url,
                           "api_key_env": "LAB_KEY", "models": ["fake-chat"]}]
    proxy = start_proxy(config, env={"LAB_KEY": PROVIDER_KEY})
    got = []
    for stream in (True, False):
        answer = requests.post(proxy.url + "/api/chat", headers=auth(GENERATE), json={
            "model": "llama3.2", "stream": stream, "messages": [{"role": "user", "content": f"native {stream}"}]})
        lines = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
        got.append(("/api/chat", "".join(line["message"]["content"] for line in lines)))
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=GENERATE, max_retries=0) as client:
        two = client.chat.completions.create(model="llama3.2", n=2, messages=[{"role": "user", "content": "twice"}])
        got.append(("/v1/chat/completions", "".join(choice.message.content for choice in two.choices)))
        for stream in (True, False):
            asked = [{"role": "user", "content": f"provider {stream}"}]
            if stream:
                with client.chat.completions.create(model="lab:fake-chat", stream=True, messages=asked) as chunks:
                    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            else:
                text = client.chat.completions.create(model="lab:fake-chat", messages=asked).choices[0].message.content
            got.append(("/v1/chat/completions", text))

    lines = chat_lines(proxy, len(got))
    # In the order written, not asked: each worker writes its own lines, off its event loop.
    assert sorted((line["path"], line["answer"]) for line in lines) == sorted(got)
    assert got[0][1] == "You said: native True" and got[3][1].startswith("You said: provider")
    assert got[2][1] == "You said: twice" * 2
