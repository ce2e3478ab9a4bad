"""Table tests for the tools of a Responses request: namespaces expanded, hosted tools left out, names back."""

from __future__ import annotations

import pytest

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.responses.tools import ToolSet, left_out_tools, qualified

PARAMETERS = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
EXEC = {"type": "function", "name": "exec_command", "description": "Run a command", "strict": False,
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}
AGENTS = {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents", "tools": [
    {"type": "function", "name": "close_agent", "description": "Close an agent", "strict": False,
     "parameters": PARAMETERS},
    {"type": "function", "name": "multi_agent_v1.wait", "description": "Wait"}]}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}


def ollama_tool(name, description=None, parameters=None):
    function = {"name": name}
    if description is not None:
        function["description"] = description
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


OLLAMA_EXEC = ollama_tool("exec_command", "Run a command", EXEC["parameters"])
OLLAMA_CLOSE = ollama_tool("multi_agent_v1.close_agent", "Close an agent", PARAMETERS)
OLLAMA_WAIT = ollama_tool("multi_agent_v1.wait", "Wait")


@pytest.mark.parametrize(("namespace", "name", "expected"), [
    pytest.param("ns", "f", "ns.f", id="qualified with the namespace"),
    pytest.param("ns", "ns.f", "ns.f", id="already qualified: kept"),
    pytest.param(None, "f", "f", id="no namespace"),
    pytest.param("", "f", "f", id="empty namespace"),
])
def test_qualified(namespace, name, expected):
    assert qualified(namespace, name) == expected


TOOLS_CASES = [
    pytest.param({"tools": [EXEC, AGENTS, WEB_SEARCH]}, [OLLAMA_EXEC, OLLAMA_CLOSE, OLLAMA_WAIT], ["web_search"],
                 id="Codex's tools: namespace expanded, web_search left out"),
    pytest.param({"tools": [EXEC], "input": [
        {"type": "additional_tools", "role": "developer", "tools": [
            {"type": "namespace", "name": "functions", "tools": [
                {"type": "custom", "name": "exec", "format": {"type": "grammar"}},
                {"type": "function", "name": "wait"}]},
            {"type": "image_generation"}]},
        {"role": "user", "content": "Hi"}]},
        [OLLAMA_EXEC, ollama_tool("functions.wait")], ["custom:functions.exec", "image_generation"],
        id="additional_tools join tools; custom and hosted ones left out"),
    pytest.param({"tools": [{"type": "namespace", "name": "outer", "tools": [
        {"type": "namespace", "name": "inner", "tools": [{"type": "function", "name": "f"}]}]}]},
        [], ["namespace:outer.inner"], id="a namespace in a namespace is left out"),
    pytest.param({"tools": [{"type": "namespace", "tools": [{"type": "function", "name": "f"}]}]},
                 [ollama_tool("f")], [], id="a namespace without a name adds no prefix"),
    pytest.param({"tools": [WEB_SEARCH, {"type": "web_search"}, {"type": "file_search"},
                            {"type": "code_interpreter", "container": {"type": "auto"}}, {"type": "computer_use"},
                            {"type": "mcp", "server_label": "x"}, {"type": "local_shell"}]},
                 [], ["web_search", "file_search", "code_interpreter", "computer_use", "mcp", "local_shell"],
                 id="every hosted tool left out, each named once"),
    pytest.param({"tools": None}, [], [], id="no tools"),
]


@pytest.mark.parametrize(("body", "tools", "left_out"), TOOLS_CASES)
def test_tools_and_what_is_left_out(body, tools, left_out):
    assert ToolSet.of(body).ollama_tools(None) == tools
    assert left_out_tools(body) == left_out


CHOICE_CASES = [
    pytest.param("auto", [OLLAMA_EXEC, OLLAMA_CLOSE, OLLAMA_WAIT], id="auto"),
    pytest.param("required", [OLLAMA_EXEC, OLLAMA_CLOSE, OLLAMA_WAIT], id="required sends every function"),
    pytest.param("none", [], id="none"),
    pytest.param({"type": "function", "name": "close_agent", "namespace": "multi_agent_v1"}, [OLLAMA_CLOSE],
                 id="a namespaced function by name and namespace"),
    pytest.param({"type": "function", "name": "multi_agent_v1.close_agent"}, [OLLAMA_CLOSE],
                 id="a namespaced function by its qualified name"),
    pytest.param({"type": "allowed_tools", "mode": "auto", "tools": [
        {"type": "function", "name": "exec_command"}, {"type": "function", "name": "close_agent"},
        {"type": "web_search"}]}, [OLLAMA_EXEC, OLLAMA_CLOSE], id="allowed_tools; a bare member name is found"),
]


@pytest.mark.parametrize(("tool_choice", "tools"), CHOICE_CASES)
def test_tool_choice(tool_choice, tools):
    assert ToolSet.of({"tools": [EXEC, AGENTS, WEB_SEARCH]}).ollama_tools(tool_choice) == tools


@pytest.mark.parametrize(("tool_choice", "message"), [
    pytest.param({"type": "web_search"}, "tool_choice forces web_search", id="a hosted tool"),
    pytest.param({"type": "custom", "name": "exec"}, "forces custom", id="a custom tool"),
    pytest.param({"type": "mcp", "server_label": "x"}, "forces mcp", id="an MCP server"),
    pytest.param({"type": "function", "name": "close_agent", "namespace": "other"}, "not in tools: other.close_agent",
                 id="a function of another namespace"),
    pytest.param({"type": "allowed_tools", "mode": "required", "tools": [{"type": "web_search"}]},
                 "forces web_search", id="allowed_tools requiring a hosted tool only"),
    pytest.param({"type": "allowed_tools"}, "must be", id="allowed_tools without tools"),
    pytest.param("sometimes", "must be", id="an unknown word"),
])
def test_tool_choice_refused(tool_choice, message):
    with pytest.raises(InvalidRequest) as caught:
        ToolSet.of({"tools": [EXEC, AGENTS, WEB_SEARCH]}).ollama_tools(tool_choice)
    assert caught.value.param == "tool_choice" and message in caught.value.message


NAMES = ToolSet.of({"tools": [EXEC, AGENTS, {"type": "namespace", "name": "a", "tools": [
    {"type": "function", "name": "shared"}, {"type": "function", "name": "exec_command"}]},
    {"type": "namespace", "name": "b", "tools": [{"type": "function", "name": "shared"}]}]})


@pytest.mark.parametrize(("ollama_name", "fields"), [
    pytest.param("exec_command", {"name": "exec_command"}, id="a plain function"),
    pytest.param("multi_agent_v1.close_agent", {"name": "close_agent", "namespace": "multi_agent_v1"},
                 id="a qualified call: name and namespace apart"),
    pytest.param("multi_agent_v1.wait", {"name": "multi_agent_v1.wait", "namespace": "multi_agent_v1"},
                 id="a member declared qualified keeps its declared name"),
    pytest.param("close_agent", {"name": "close_agent", "namespace": "multi_agent_v1"},
                 id="a bare member name, unambiguous"),
    pytest.param("shared", {"name": "shared"}, id="a bare name two namespaces share: as called"),
    pytest.param("nowhere", {"name": "nowhere"}, id="an undeclared name: as called"),
])
def test_call_fields(ollama_name, fields):
    assert NAMES.call_fields(ollama_name) == fields


@pytest.mark.parametrize(("name", "namespace", "ollama_name"), [
    pytest.param("close_agent", "multi_agent_v1", "multi_agent_v1.close_agent", id="with its namespace"),
    pytest.param("close_agent", None, "multi_agent_v1.close_agent", id="a bare member name, unambiguous"),
    pytest.param("exec_command", None, "exec_command", id="a plain function wins over a member"),
    pytest.param("a.shared", None, "a.shared", id="already qualified"),
    pytest.param("gone", "old", "old.gone", id="a namespace no longer declared still qualifies"),
])
def test_ollama_name(name, namespace, ollama_name):
    assert NAMES.ollama_name(name, namespace) == ollama_name
