"""A varied, fixed set of Anthropic requests to measure count_tokens against a real tokenizer.

Short chats, long English prose (the Python reference's own topics), code (standard-library
modules, numbered as Claude Code's Read tool shows a file), other languages and scripts,
tool definitions and agent conversations with tool calls, their results and thinking. The
texts come from this module and from the running Python's standard library, so a run on the
same Python measures the same requests. No images: the model the tests run reads no images.
Requests without a system prompt are the short ones alone: for them the chat template adds
a default system prompt of its own (Qwen2.5's: about 20 tokens), which the estimate cannot know.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pydoc_data.topics import topics

FOREIGN = {
    "German": "Gestern habe ich versucht, die Konfiguration des Servers zu ändern, aber nach dem Neustart "
              "wurden meine Änderungen nicht übernommen. Kannst du mir erklären, wo die Datei liegt und "
              "welche Berechtigungen sie braucht?",
    "French": "J'aimerais comprendre pourquoi la réponse arrive par petits morceaux plutôt qu'en une seule "
              "fois. Est-ce que le navigateur attend la fin du flux avant d'afficher le texte, ou bien "
              "est-ce le serveur qui retient les données ?",
    "Spanish": "Necesito un resumen breve de este registro: qué peticiones fallaron, a qué hora empezaron "
               "los errores y si el problema parece venir de la red o del propio modelo.",
    "Portuguese": "Podes rever esta função e dizer-me se há algum caso em que ela devolve um valor errado? "
                  "Os testes passam, mas um colega encontrou um resultado estranho ontem à noite.",
    "Italian": "Vorrei scrivere una piccola guida per i nuovi colleghi: come si avvia il servizio, dove si "
               "trovano i registri e che cosa fare quando una richiesta resta in attesa troppo a lungo.",
    "Russian": "Помоги, пожалуйста, разобраться с ошибкой: после обновления библиотеки тесты стали падать "
               "на сборочном сервере, хотя у меня на компьютере всё работает. С чего лучше начать поиск?",
    "Greek": "Θα ήθελα να μάθω πώς μπορώ να περιορίσω τον αριθμό των αιτημάτων ανά λεπτό για κάθε χρήστη, "
             "χωρίς να επηρεάζονται οι υπόλοιποι.",
    "Chinese": "请帮我检查一下这段代码为什么在处理很长的输入时会变得很慢。我怀疑是字符串拼接的问题，"
               "但是不确定。如果可以的话，请给出一个更好的写法，并解释原因。",
    "Japanese": "このエラーメッセージの意味を教えてください。昨日までは問題なく動いていたのに、"
                "今朝から急に接続できなくなりました。設定は何も変えていません。",
    "Korean": "이 함수가 어떤 일을 하는지 간단하게 설명해 주세요. 그리고 입력이 비어 있을 때 어떻게 "
              "동작하는지도 알려 주시면 좋겠습니다.",
    "Arabic": "أريد أن أفهم لماذا يستغرق تحميل النموذج وقتاً طويلاً في المرة الأولى فقط، ثم تصبح الطلبات "
              "التالية سريعة جداً.",
    "Hindi": "क्या आप मुझे बता सकते हैं कि इस प्रोग्राम को छोटे हिस्सों में कैसे बाँटा जाए ताकि हर हिस्से "
             "की जाँच अलग से हो सके?",
    "Turkish": "Bu betiği her gece çalıştırmak istiyorum, ancak bazen yarıda kalıyor. Günlük dosyasına "
               "nasıl daha ayrıntılı bilgi yazdırabilirim?",
    "Vietnamese": "Tôi muốn biết cách giới hạn số lượng yêu cầu mà mỗi người dùng có thể gửi trong một phút "
                  "mà không làm chậm những người khác.",
}

SYSTEM = ("You are a coding assistant working in the user's repository. Read files before you change "
          "them, keep changes small, run the tests after every change, and explain what you did in a few "
          "sentences. Never invent file names or APIs: look them up with the tools you have.")


def _tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"name": name, "description": description,
            "input_schema": {"type": "object", "properties": properties, "required": required,
                             "additionalProperties": False}}


def _string(description: str) -> dict:
    return {"type": "string", "description": description}


TOOLS = [
    _tool("Read", "Read a file from the local filesystem. Lines are numbered from 1; long files can be "
                  "read in parts with offset and limit.",
          {"file_path": _string("The absolute path of the file to read"),
           "offset": {"type": "integer", "description": "The line to start reading from"},
           "limit": {"type": "integer", "description": "How many lines to read"}}, ["file_path"]),
    _tool("Edit", "Replace an exact string in a file with another. The old string must occur exactly "
                  "once unless replace_all is set.",
          {"file_path": _string("The absolute path of the file to modify"),
           "old_string": _string("The text to replace"), "new_string": _string("The text to put instead"),
           "replace_all": {"type": "boolean", "default": False}}, ["file_path", "old_string", "new_string"]),
    _tool("Bash", "Run a shell command and return its output. Commands time out after two minutes.",
          {"command": _string("The command to run"),
           "timeout": {"type": "number", "description": "Seconds before the command is stopped"}}, ["command"]),
    _tool("Grep", "Search file contents with a regular expression.",
          {"pattern": _string("The regular expression"), "path": _string("Where to search"),
           "glob": _string("Which files, as a glob such as *.py")}, ["pattern"]),
    _tool("Glob", "List files whose paths match a glob pattern, newest first.",
          {"pattern": _string("The glob pattern, such as src/**/*.ts")}, ["pattern"]),
    _tool("Write", "Write a whole file, replacing it if it exists.",
          {"file_path": _string("The absolute path"), "content": _string("The file's new content")},
          ["file_path", "content"]),
]


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    body: dict


def numbered(source: str) -> str:
    """Return source as a file-reading tool shows it: each line after its number and a tab."""
    return "\n".join(f"{number:>6}\t{line}" for number, line in enumerate(source.splitlines(), 1))


def module_source(name: str, lines: int) -> str:
    return "\n".join(inspect.getsource(import_module(name)).splitlines()[:lines])


def user(content) -> dict:
    return {"role": "user", "content": content}


def assistant(content) -> dict:
    return {"role": "assistant", "content": content}


def read_exchange(call_id: str, path: str, source: str, thinking: str | None = None) -> list[dict]:
    """Return an assistant turn reading a file and the user turn with the tool's result."""
    blocks = [{"type": "thinking", "thinking": thinking, "signature": ""}] if thinking else []
    blocks += [{"type": "text", "text": f"Let me read {path}."},
               {"type": "tool_use", "id": call_id, "name": "Read", "input": {"file_path": path}}]
    return [assistant(blocks), user([{"type": "tool_result", "tool_use_id": call_id, "content": numbered(source)}])]


def corpus() -> list[Case]:
    """Return the requests, in a fixed order."""
    return [*_short(), *_prose(), *_code(), *_foreign(), *_tools(), *_agent()]


def _short() -> Iterator[Case]:
    yield Case("short", "hi", {"messages": [user("hi")]})
    yield Case("short", "question", {"messages": [user("What is the capital of Australia?")]})
    yield Case("short", "with system", {"system": "Be brief.", "messages": [user("Name three prime numbers.")]})
    yield Case("short", "two turns", {"messages": [user("Hello!"), assistant("Hello! How can I help?"),
                                                   user("What time zone is Lisbon in?")]})
    yield Case("short", "numbers", {"messages": [user("Add 1234, 5678 and 91011, then divide by 3.")]})
    yield Case("short", "blocks", {"system": [{"type": "text", "text": "You answer in one line."}],
                                   "messages": [user([{"type": "text", "text": "Why is the sky blue?"}])]})


def _prose() -> Iterator[Case]:
    for topic in ("lambda", "assert", "with", "exceptions", "class", "specialnames"):
        yield Case("prose", topic, {"messages": [user(f"Summarise this for a beginner:\n\n{topics[topic]}")]})
    yield Case("prose", "long system", {"system": topics["import"], "messages": [user("What is a finder?")]})


def _code() -> Iterator[Case]:
    for module, lines in (("json.decoder", 120), ("textwrap", 200), ("shlex", 340), ("fnmatch", 80)):
        yield Case("code", module, {"messages": [user(f"Review this module:\n\n{module_source(module, lines)}")]})
    for module, lines in (("colorsys", 166), ("bisect", 118)):
        exchange = read_exchange("toolu_01", f"/usr/lib/python3/{module}.py", module_source(module, lines))
        yield Case("code", f"{module} read", {"system": SYSTEM, "tools": TOOLS,
                                              "messages": [user(f"Explain {module}.py"), *exchange]})


def _foreign() -> Iterator[Case]:
    for language, text in FOREIGN.items():
        yield Case("other languages", language, {"system": "Answer in the language of the question.",
                                                  "messages": [user(text)]})


def _tools() -> Iterator[Case]:
    weather = _tool("get_weather", "Get the current weather in a city", {"city": _string("The city")}, ["city"])
    yield Case("tools", "one tool", {"tools": [weather], "messages": [user("Weather in Lima?")]})
    call = {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Lima"}}
    yield Case("tools", "tool round trip", {"tools": [weather], "messages": [
        user("Weather in Lima?"), assistant([call]),
        user([{"type": "tool_result", "tool_use_id": "toolu_02", "content": "18 degrees, overcast"}])]})
    yield Case("tools", "agent tools", {"system": SYSTEM, "tools": TOOLS, "messages": [user("List the tests.")]})
    listing = json.dumps([{"name": f"pkg{i}", "version": f"{i}.{i * 3 % 7}.{i * 11 % 13}", "size": 1000 + i * 37}
                          for i in range(40)], indent=2)
    bash = {"type": "tool_use", "id": "toolu_03", "name": "Bash", "input": {"command": "pip list --format json"}}
    yield Case("tools", "json result", {"system": SYSTEM, "tools": TOOLS, "messages": [
        user("Which packages are installed?"), assistant([bash]),
        user([{"type": "tool_result", "tool_use_id": "toolu_03", "content": listing}])]})
    failed = {"type": "tool_result", "tool_use_id": "toolu_04", "is_error": True,
              "content": [{"type": "text", "text": "grep: src: No such file or directory"}]}
    grep = {"type": "tool_use", "id": "toolu_04", "name": "Grep", "input": {"pattern": "def main", "path": "src"}}
    yield Case("tools", "error result", {"system": SYSTEM, "tools": TOOLS, "messages": [
        user("Where is main?"), assistant([grep]), user([failed])]})


def _agent() -> Iterator[Case]:
    history = [user("Why does the wrapper in textwrap drop my trailing spaces?")]
    history += read_exchange("toolu_10", "/usr/lib/python3/textwrap.py", module_source("textwrap", 300),
                             thinking="The user asks about whitespace handling; the TextWrapper class decides.")
    yield Case("agent", "one file", {"system": SYSTEM, "tools": TOOLS, "messages": history})
    history = history + [assistant("drop_whitespace removes them; set it to False."), user("Show me shlex too.")]
    history += read_exchange("toolu_11", "/usr/lib/python3/shlex.py", module_source("shlex", 340))
    yield Case("agent", "two files", {"system": SYSTEM, "tools": TOOLS, "messages": history})
    history = history + [assistant("shlex splits like a POSIX shell."), user(FOREIGN["German"])]
    yield Case("agent", "two files, then German", {"system": SYSTEM + "\n\n" + topics["exceptions"],
                                                    "tools": TOOLS, "messages": history})
