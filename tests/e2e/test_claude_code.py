"""Claude Code's own CLI against the real server: one agent turn that reads a file, offline.

``claude -p`` runs with its default settings, a home of its own and the proxy as
``ANTHROPIC_BASE_URL``; its permissions are not skipped: ``--allowedTools Read``
allows the one tool the turn uses. The fake Ollama answers the first request with
a call of Read on the file and the request that carries the file back with the
final text, which the CLI must print. Claude Code asks for thinking on every
turn, and names models the proxy must alias; with an Ollama model's name it sends
its environment as a system message among the messages.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.claude_code import DEFAULT_MODEL, installed_cli, offline_environment, run_prompt
from tests.e2e.conftest import ALICE, GENERATE, base_config
from tests.e2e.server import ProxyServer, wait_for

SECRET = "The secret word is pelican."
FINAL = "The notes say the secret word is pelican."
ALIASES = {"claude-sonnet-4-5": "llama3.2", "claude-opus-4-5": "qwen3:8b", DEFAULT_MODEL: "llama3.2"}


@pytest.fixture(scope="module")
def claude():
    return installed_cli()


@pytest.fixture(scope="module")
def server(fake_server, tmp_path_factory):
    config = base_config(fake_server.url)
    config["models"] = {"aliases": ALIASES}
    proxy = ProxyServer(config, tmp_path_factory.mktemp("claude-code")).start()
    yield proxy
    proxy.stop()


def _sent(fake) -> str:
    """What the fake Ollama received, for a failure's message: each chat's roles, think and tools."""
    return json.dumps([{"path": call.path, "think": (call.json or {}).get("think"),
                        "roles": [m.get("role") for m in (call.json or {}).get("messages", [])],
                        "tools": [t["function"]["name"] for t in (call.json or {}).get("tools", [])]}
                       for call in fake.requests if call.path == "/api/chat"], indent=1)


def _messages_lines(server: ProxyServer) -> list[dict]:
    return [entry for entry in map(json.loads, server.access_lines()) if entry["path"] != "/health"]


@pytest.mark.parametrize(("model", "ollama_model", "credentials"), [
    pytest.param("claude-sonnet-4-5", "llama3.2", {"ANTHROPIC_API_KEY": GENERATE},
                 id="a Claude name aliased to a model that cannot think"),
    pytest.param("claude-opus-4-5", "qwen3:8b", {"ANTHROPIC_API_KEY": GENERATE},
                 id="a Claude name aliased to a model that thinks"),
    pytest.param("llama3.2", "llama3.2", {"ANTHROPIC_AUTH_TOKEN": ALICE},
                 id="an Ollama model's name: system messages mid-conversation"),
    pytest.param(None, "llama3.2", {"ANTHROPIC_API_KEY": GENERATE},
                 id="no model set: its default, aliased"),
])
def test_a_turn_that_reads_a_file(claude, server, fake, tmp_path, model, ollama_model, credentials):
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    notes = project / "notes.txt"
    notes.write_text(SECRET + "\n")
    fake.script(ollama_model, reply="", thinking="The file will say.", reply_to_tool_result=FINAL,
                tool_calls=[{"function": {"name": "Read", "arguments": {"file_path": str(notes)}}}])
    before = len(_messages_lines(server))

    done = run_prompt(claude, "What do my notes say?", cwd=project, allowed_tool="Read",
                      env=offline_environment(home, server.url, credentials, model))

    assert done.returncode == 0 and FINAL in done.stdout, (done.stdout, done.stderr, _sent(fake))
    first, second = (call.json for call in fake.calls("/api/chat"))
    assert first["model"] == second["model"] == ollama_model
    assert "Read" in [tool["function"]["name"] for tool in first["tools"]]
    result = second["messages"][-1]
    assert result["role"] == "tool" and result["tool_name"] == "Read" and SECRET in result["content"]
    thinks = ollama_model == "qwen3:8b"
    assert [bool(call.get("think")) for call in (first, second)] == [thinks, thinks], _sent(fake)
    if model is None or model == ollama_model:  # a model Claude Code does not know: its environment mid-way
        assert "system" in [m["role"] for m in first["messages"][1:]], _sent(fake)
    assert wait_for(lambda: len(_messages_lines(server)) - before == 2)
    assert [(e["method"], e["path"], e["status"]) for e in _messages_lines(server)[before:]] == \
        [("POST", "/v1/messages", 200)] * 2
