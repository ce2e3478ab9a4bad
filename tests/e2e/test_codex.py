"""The real Codex CLI (``@openai/codex``, pinned, from npm) against the real server, over the fake Ollama.

Codex is set up as a user would: a model provider at the proxy's /v1 over the Responses API,
the proxy's token in an environment variable, a GPT model name that the proxy aliases to an
Ollama model, and Codex's default tools. One ``codex exec`` turn is an agent's turn: the fake
model calls a tool, Codex runs it (read-only sandbox) and sends its output back, the fake
model answers, and Codex prints the answer.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.codex import ARTIFACTS, Codex, install
from tests.e2e.conftest import GENERATE, base_config
from tests.e2e.server import ProxyServer

NOTE = "The launch code is 7-4-1."
FINAL = "The note says the launch code is 7-4-1."
THINKING = "I should read the note first."
READ_NOTE = {"id": "call_read", "function": {"name": "exec_command", "arguments": {"cmd": "cat note.txt"}}}
LIST_FILES = {"id": "call_list", "function": {"name": "exec_command", "arguments": {"cmd": "ls"}}}
MODELS = [  # Codex's model name, the Ollama model it is an alias of, whether that model thinks
    pytest.param("gpt-5-codex", "qwen3:8b", True, id="thinking model"),
    pytest.param("gpt-5-codex-mini", "llama3.2", False, id="non-thinking model"),
]


@pytest.fixture(scope="module")
def codex_command():
    return install()


@pytest.fixture(scope="module")
def codex_proxy(fake_server, tmp_path_factory):
    config = base_config(fake_server.url)
    config["models"] = {"aliases": {"gpt-5-codex": "qwen3:8b", "gpt-5-codex-mini": "llama3.2"}}
    server = ProxyServer(config, tmp_path_factory.mktemp("codex-proxy")).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def sent_to_ollama(request, fake):
    """Keep what Codex's turns became at Ollama's end under test-artifacts/, one JSON body a line."""
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w-]+", "-", request.node.name).strip("-")
    lines = [json.dumps(recorded.json) + "\n" for recorded in fake.calls("/api/chat")]
    (ARTIFACTS / f"codex-{name}.jsonl").write_text("".join(lines))


@pytest.fixture
def workdir(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    (path / "note.txt").write_text(NOTE + "\n")
    return path


def codex(codex_command, codex_proxy, tmp_path, model: str) -> Codex:
    return Codex(codex_command, tmp_path / "codex-home", codex_proxy.url, model, GENERATE)


@pytest.mark.parametrize(("model", "upstream", "thinks"), MODELS)
def test_codex_runs_a_tool_and_answers(codex_command, codex_proxy, fake, tmp_path, workdir, model, upstream, thinks):
    fake.script(upstream, thinking=THINKING, reply=FINAL, tool_calls=[READ_NOTE, LIST_FILES], reply_after_tools=True)
    done = codex(codex_command, codex_proxy, tmp_path, model).exec("What does note.txt say?", workdir)
    assert done.returncode == 0, done.stderr
    assert FINAL in done.stdout

    first, second = (recorded.json for recorded in fake.calls("/api/chat"))
    assert first["model"] == second["model"] == upstream
    offered = {tool["function"]["name"] for tool in first["tools"]}
    assert {"exec_command", "multi_agent_v1.close_agent"} <= offered  # a namespace's functions, qualified
    assert not any(name.startswith("web_search") for name in offered)  # the hosted tool left out
    call_turn, read, listed = second["messages"][-3:]  # two parallel calls, then their outputs in order
    assert [call["id"] for call in call_turn["tool_calls"]] == ["call_read", "call_list"]
    assert call_turn["tool_calls"][0]["function"] == READ_NOTE["function"]
    assert (read["role"], read["tool_call_id"], read["tool_name"]) == ("tool", "call_read", "exec_command")
    assert NOTE in read["content"]
    assert listed["tool_call_id"] == "call_list" and "note.txt" in listed["content"]
    assert (call_turn.get("thinking") == THINKING) is thinks  # the reasoning Codex sent back
    assert "left out tools Ollama cannot run: web_search" in (codex_proxy.log_dir / "error.log").read_text()


def test_codex_runs_a_namespaced_function(codex_command, codex_proxy, fake, tmp_path, workdir):
    close = {"id": "call_close", "function": {"name": "multi_agent_v1.close_agent",
                                              "arguments": {"target": "no-such-agent"}}}
    fake.script("llama3.2", reply="Nothing to close.", tool_calls=[close], reply_after_tools=True)
    done = codex(codex_command, codex_proxy, tmp_path, "gpt-5-codex-mini").exec("Close the helper agent.", workdir)
    assert done.returncode == 0, done.stderr
    assert "Nothing to close." in done.stdout
    call_turn, result = fake.calls("/api/chat")[-1].json["messages"][-2:]
    # Codex dispatched the call by its name and namespace, and sent both back: one qualified name again.
    assert call_turn["tool_calls"][0]["function"]["name"] == "multi_agent_v1.close_agent"
    assert result["tool_name"] == "multi_agent_v1.close_agent"
    assert "unsupported call" not in result["content"]
