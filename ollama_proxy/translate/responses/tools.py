"""Turn the tools a Responses request declares into Ollama's function tools, and name calls back.

| declared | becomes |
|---|---|
| ``function`` tools | Ollama function tools (``strict`` dropped: Ollama does not constrain arguments) |
| ``namespace`` tools | their functions, each named ``<namespace>.<name>`` |
| the ``tools`` of ``additional_tools`` input items | the same, after those of ``tools`` |
| hosted tools: ``web_search``, ``file_search``, ``code_interpreter``, ``mcp`` ... | left out (``left_out_tools``) |
| ``custom`` tools (free text, not JSON arguments) | left out (``left_out_tools``) |

A tool left out that ``tool_choice`` forces is refused (400): the model could not call it.

Ollama's tools have one flat name, so a namespace's functions are qualified with
it, as Ollama's own ``/v1/responses`` does (a member already named
``<namespace>.<x>`` keeps its name). Calls go back the other way: a call of
``<namespace>.<name>`` is a ``function_call`` with ``name`` and ``namespace``
apart, the shape OpenAI answers and Codex dispatches on, and a ``function_call``
input item with a ``namespace`` is qualified again for the model. A call of a
member's bare name, when only one namespace has such a member and no plain
function has the name, is that member's (small models drop the prefix).

``tool_choice``: Ollama cannot force a call, so ``required`` sends every tool
like ``auto``; ``none`` sends none; a function or ``allowed_tools`` sends only
those (a namespaced function is named by ``name`` with its ``namespace``, or
qualified).
"""

from __future__ import annotations

from dataclasses import dataclass

from ollama_proxy.errors import InvalidRequest

SEPARATOR = "."
_ADDITIONAL_TOOLS = "additional_tools"


def qualified(namespace: object, name: str) -> str:
    """Return the Ollama name of function ``name`` of ``namespace`` (none: the name itself)."""
    if not isinstance(namespace, str) or not namespace or name.startswith(namespace + SEPARATOR):
        return name
    return f"{namespace}{SEPARATOR}{name}"


@dataclass(frozen=True)
class _Function:
    ollama_name: str
    name: str
    namespace: str | None
    tool: dict  # in Ollama's shape


class ToolSet:
    """The functions a request declares, under the names Ollama sees, and the tools left out."""

    def __init__(self, functions: list[_Function], left_out: list[str]) -> None:
        self.functions = functions
        self.left_out = left_out
        self._by_name = {function.ollama_name: function for function in functions}
        members: dict[str, list[_Function]] = {}
        for function in functions:
            if function.namespace is not None:
                members.setdefault(function.name, []).append(function)
        # A bare member name stands for its member only where that is unambiguous.
        self._bare = {name: found[0] for name, found in members.items()
                      if len(found) == 1 and name not in self._by_name}

    @classmethod
    def of(cls, body: dict) -> ToolSet:
        """Read the tools of ``tools`` and of the ``additional_tools`` input items."""
        reader = _Reader()
        tools = body.get("tools")
        if tools is not None:
            reader.read_list(tools, "tools", None)
        items = body.get("input")
        for index, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and item.get("type") == _ADDITIONAL_TOOLS:
                reader.read_list(item.get("tools") or [], f"input[{index}].tools", None)
        return cls(reader.functions, reader.left_out)

    def ollama_tools(self, tool_choice: object) -> list[dict]:
        """Return the Ollama tools that ``tool_choice`` lets the model call."""
        allowed = self._allowed(tool_choice)
        return [function.tool for function in self.functions if allowed is None or function.ollama_name in allowed]

    def call_fields(self, ollama_name: str) -> dict:
        """Return the ``name`` (and ``namespace``) of a call the model made as ``ollama_name``."""
        function = self._by_name.get(ollama_name) or self._bare.get(ollama_name)
        if function is None or function.namespace is None:
            return {"name": ollama_name}
        return {"name": function.name, "namespace": function.namespace}

    def ollama_name(self, name: str, namespace: object = None) -> str:
        """Return the name the model knows a function by, from a call's ``name`` and ``namespace``."""
        if isinstance(namespace, str) and namespace:
            return qualified(namespace, name)
        function = self._by_name.get(name) or self._bare.get(name)
        return function.ollama_name if function is not None else name

    def _allowed(self, tool_choice: object) -> set[str] | None:
        """Return the Ollama names ``tool_choice`` allows, or None for all of them."""
        if tool_choice in (None, "auto"):
            return None
        if tool_choice == "required":
            if not self.functions and self.left_out:
                raise _forced(", ".join(self.left_out))
            return None
        if tool_choice == "none":
            return set()
        kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
        if kind == "function":
            return self._known({self._choice_name(tool_choice)})
        if kind == "allowed_tools" and isinstance(tool_choice.get("tools"), list):
            listed = [tool for tool in tool_choice["tools"] if isinstance(tool, dict)]
            chosen = {self._choice_name(tool) for tool in listed if tool.get("type") == "function"}
            if not chosen and tool_choice.get("mode") == "required" and listed:
                raise _forced(", ".join(sorted({str(tool.get("type")) for tool in listed})))
            return self._known(chosen)
        if isinstance(kind, str) and kind not in ("function", "allowed_tools"):
            raise _forced(kind)
        raise InvalidRequest('tool_choice must be "none", "auto", "required", a function '
                             'or allowed_tools with function tools', param="tool_choice")

    def _choice_name(self, choice: dict) -> str:
        return self.ollama_name(str(choice.get("name")), choice.get("namespace"))

    def _known(self, chosen: set[str]) -> set[str]:
        unknown = sorted(chosen - set(self._by_name))
        if unknown:
            raise InvalidRequest(f"tool_choice names tools not in tools: {', '.join(unknown)}",
                                 param="tool_choice")
        return chosen


def left_out_tools(body: dict) -> list[str]:
    """Return the declared tools that Ollama cannot run, as ``type`` or ``type:name``, in order."""
    return ToolSet.of(body).left_out


class _Reader:
    """Collect the functions of tool declarations, and what is left out, in order."""

    def __init__(self) -> None:
        self.functions: list[_Function] = []
        self.left_out: list[str] = []

    def read_list(self, tools: object, param: str, namespace: str | None) -> None:
        if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
            raise InvalidRequest("tools must be a list of objects", param=param)
        for index, tool in enumerate(tools):
            self.read(tool, f"{param}[{index}]", namespace)

    def read(self, tool: dict, param: str, namespace: str | None) -> None:
        kind = tool.get("type")
        if kind == "function":
            self.functions.append(_function(tool, param, namespace))
        elif kind == "namespace" and namespace is None:
            name = tool.get("name")
            self.read_list(tool.get("tools") or [], f"{param}.tools", name if isinstance(name, str) and name else "")
        else:
            label = str(kind)
            if isinstance(tool.get("name"), str) and tool["name"]:
                label += ":" + qualified(namespace, tool["name"])
            if label not in self.left_out:
                self.left_out.append(label)


def _function(tool: dict, param: str, namespace: str | None) -> _Function:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("function tools need a name", param=f"{param}.name")
    ollama_name = qualified(namespace, name)
    function = {"name": ollama_name}
    for key in ("description", "parameters"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return _Function(ollama_name, name, namespace or None, {"type": "function", "function": function})


def _forced(tools: str) -> InvalidRequest:
    return InvalidRequest(f"tool_choice forces {tools}, which Ollama cannot run: it runs function tools only; "
                          "let the model choose (auto) or name a function tool", param="tool_choice")
