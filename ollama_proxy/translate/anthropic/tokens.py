"""Estimate the prompt tokens of an Anthropic request as the model behind Ollama will see it.

No tokenizer here (the model's is behind Ollama, which has no tokenizer
endpoint), so this is an estimate of the prompt Ollama renders from the
translated request: the system prompt, every message in its chat template's
frame, the tool definitions as JSON text, and a flat cost per image.

| part | tokens |
|---|---|
| the prompt (when there is any) | 10: the template's opening and the assistant turn it ends with |
| each message (a ``tool_result`` is a message of its own, as the translation makes it) | 5: role and turn markers |
| ``tools`` | 100 of instructions the template adds, then each definition as Ollama gets it, as JSON text |
| ``tool_use`` | its name and input as JSON text, plus 6 |
| text, ``thinking``, tool results, JSON | the text estimate below |
| ``image`` | 1,600 (below) |
| ``redacted_thinking`` | nothing: it is dropped before Ollama sees it |

The text estimate reads text as a byte-level BPE tokenizer splits it: an
English word (a run of ASCII letters) is a token, plus ½ for every seven of its
letters; a digit is a token (most tokenizers split numbers digit by digit), and
the space before a number one more; a run of punctuation is a token, plus ¼ for
each mark after the first but double quotes, which merge with their neighbours
(``": "`` is two tokens); a line break is a token, a pair of them (a blank line)
one, and the indentation after one is part of it; a tab or a run of spaces
inside a line is ½; every other character (accented letters, Cyrillic, CJK ...)
is ½ a token per byte of its UTF-8. The rates were measured on SmolLM2's
tokenizer (``bench/count_tokens.py``, docs/anthropic.md); larger vocabularies
need fewer tokens (Qwen, Llama 3: markedly fewer for CJK and Cyrillic), and
English-centric ones more for other languages in Latin letters, which the
learned correction (``correction``) makes up for model by model. It is counted
with ``bytes.translate`` and ``bytes.count`` (C speed: a megabyte in tens of
milliseconds), and a long text's figure is remembered for the next turn of its
conversation.

An image costs Anthropic's figure for a full-size one; vision models behind
Ollama use 256 to ~1,500, and erring high is the safe side for a client
budgeting its context. Thinking is counted although many chat templates drop
earlier turns' thinking.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ollama_proxy.errors import InvalidRequest

PROMPT_OVERHEAD = 10
MESSAGE_OVERHEAD = 5
TOOLS_OVERHEAD = 100
TOOL_CALL_OVERHEAD = 6
IMAGE_TOKENS = 1600

_PUNCTUATION = frozenset(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _classes(**members) -> bytes:
    """Return a bytes.translate table: a byte in a class's set becomes the class's letter, any other a space."""
    table = bytearray(b" " * 256)
    for letter, bytes_of_class in members.items():
        for byte in bytes_of_class:
            table[byte] = ord(letter)
    return bytes(table)


_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Each table keeps what one count needs; counting short patterns in the translated bytes is
# C speed, several times faster than regular expressions over the text.
_LETTERS = _classes(a=_ASCII_LETTERS)
_PUNCTUATION_RUNS = _classes(p=_PUNCTUATION)
_MARK_RUNS = _classes(p=_PUNCTUATION - {ord('"')})  # quotes merge with their neighbours
_NUMBERS = _classes(d=b"0123456789", s=b" \t")
_GAPS = _classes(x=bytes(set(range(256)) - set(b" \t\n\r")), t=b"\t", n=b"\n\r")
_LONG_WORD = b"a" * 7
_TOKENS_PER_LONG_WORD_PART = 0.5
_TOKENS_PER_MORE_PUNCTUATION = 0.25
_TOKENS_PER_GAP = 0.5
_TOKENS_PER_OTHER_BYTE = 0.5
_PIECE_CHARS = 1 << 18  # a longer text is counted a piece at a time
_CUT_WINDOW = 1 << 16  # characters searched at once for a place to cut it
_PUNCTUATION_CLASS = r"!-/:-@\[-`{-~"
# Where a text may be cut without changing a count: before a letter, digit or mark that does not go on a run of
# its kind (a word, a spaced number, a run of marks), or before a character no count looks at (not ASCII, or a
# control character other than a tab or a line break).
_CUT = re.compile(rf"(?<![A-Za-z])[A-Za-z]|(?<![ \t])[0-9]|(?<![{_PUNCTUATION_CLASS}])[{_PUNCTUATION_CLASS}]"
                  r"|[^\t\n -~]")
_CACHED_FROM = 2048  # characters: shorter texts are estimated again, longer ones remembered
_CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class Estimate:
    """A request's estimated prompt: the tokens of its text and structure, and its images."""

    text_tokens: float = 0.0
    images: int = 0

    @property
    def tokens(self) -> int:
        return math.ceil(self.text_tokens) + IMAGE_TOKENS * self.images

    def __add__(self, other: Estimate) -> Estimate:
        return Estimate(self.text_tokens + other.text_tokens, self.images + other.images)


NOTHING = Estimate()


def count_tokens(body: dict) -> int:
    """Estimate the prompt tokens of a Messages (or count_tokens) request."""
    return estimate(body).tokens


def estimate(body: dict) -> Estimate:
    """Estimate the prompt of a Messages (or count_tokens) request, its images apart."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    messages = body.get("messages")
    messages = [] if messages is None else messages
    tools = body.get("tools")
    tools = [] if tools is None else tools
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list", param="messages")
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list", param="tools")
    total = _system(body.get("system")) + _tools(tools)
    for message in messages:
        total += _message(message.get("content") if isinstance(message, dict) else message)
    if total == NOTHING:
        return NOTHING
    return total + Estimate(PROMPT_OVERHEAD)


def text_tokens(text: str) -> float:
    """Estimate the tokens of a text (see the module's docstring for the rates).

    A conversation comes again with every turn, so long texts' estimates are
    remembered (by hash and length, not the text itself) for the next one.
    """
    if len(text) < _CACHED_FROM:
        return _text_tokens(text) if text else 0.0
    key = (hash(text), len(text))
    tokens = _remembered.pop(key, None)
    if tokens is None:
        tokens = _text_tokens(text)
        if len(_remembered) >= _CACHE_ENTRIES:
            del _remembered[next(iter(_remembered))]
    _remembered[key] = tokens  # last in, last out: the dict keeps insertion order
    return tokens


_remembered: dict[tuple[int, int], float] = {}


def _text_tokens(text: str) -> float:
    counts = [0] * 11
    for piece in _pieces(text):
        for i, n in enumerate(_counts(piece)):
            counts[i] += n
    (words, long_word_parts, digits, spaced_numbers, punctuation_runs, more_marks, breaks, blank_lines, tabs,
     spaces, other_bytes) = counts
    return (words + _TOKENS_PER_LONG_WORD_PART * long_word_parts + digits + spaced_numbers
            + punctuation_runs + _TOKENS_PER_MORE_PUNCTUATION * more_marks
            + breaks - blank_lines  # a blank line is one token with its break
            + _TOKENS_PER_GAP * (tabs + spaces) + _TOKENS_PER_OTHER_BYTE * other_bytes)


def _pieces(text: str):
    """Cut a long text where no count spans the cut (``_CUT``), about every ``_PIECE_CHARS`` characters.

    Each count then adds up over the pieces to the whole text's, and no one call over a
    piece holds the interpreter long: a thread counting 45 MB lets the event loop run.
    """
    start = 0
    while len(text) - start > _PIECE_CHARS:
        end = start + _PIECE_CHARS
        while end < len(text) and (found := _CUT.search(text, end, end + _CUT_WINDOW)) is None:
            end += _CUT_WINDOW  # a long run without a cut (spaces, letters, punctuation): the piece goes on
        end = min(end, len(text)) if found is None else found.start()
        yield text[start:end]
        start = end
    yield text[start:]


def _counts(text: str) -> tuple[int, ...]:
    raw = text.encode("utf-8", "surrogatepass")
    letters = raw.translate(_LETTERS)
    punctuation = raw.translate(_PUNCTUATION_RUNS)
    marks = raw.translate(_MARK_RUNS)
    numbers = raw.translate(_NUMBERS)
    gaps = raw.translate(_GAPS)
    return (letters.count(b" a") + letters.startswith(b"a"), letters.count(_LONG_WORD),
            numbers.count(b"d"), numbers.count(b"sd"),
            punctuation.count(b" p") + punctuation.startswith(b"p"),
            marks.count(b"p") - marks.count(b" p") - marks.startswith(b"p"),
            raw.count(b"\n"), raw.count(b"\n\n"),
            gaps.count(b"xt"), gaps.count(b"x  "),
            len(raw) - len(text.encode("ascii", "ignore")))


def _system(system: Any) -> Estimate:
    if not system:
        return NOTHING
    return Estimate(MESSAGE_OVERHEAD) + _content(system)


def _tools(tools: list) -> Estimate:
    if not tools:
        return NOTHING
    return Estimate(TOOLS_OVERHEAD + sum(text_tokens(_dumps(_as_ollama_tool(tool))) for tool in tools))


def _as_ollama_tool(tool: Any) -> Any:
    """Return a tool definition as the translation hands it to Ollama, whose template renders it."""
    if not isinstance(tool, dict):
        return tool
    function = {"name": tool.get("name"), "description": tool.get("description"),
                "parameters": tool.get("input_schema")}
    return {"type": "function", "function": {k: v for k, v in function.items() if v is not None}}


def _message(content: Any) -> Estimate:
    """Estimate one message; each tool_result in it is a message of its own."""
    total = Estimate(MESSAGE_OVERHEAD)
    if not isinstance(content, list):
        return total + _block(content)
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            total += Estimate(MESSAGE_OVERHEAD)
        total += _block(block)
    return total


def _content(content: Any) -> Estimate:
    """Estimate a string or a list of content blocks."""
    if content is None:
        return NOTHING
    if not isinstance(content, list):
        return _block(content)
    total = NOTHING
    for block in content:
        total += _block(block)
    return total


def _block(block: Any) -> Estimate:
    """Estimate one content block (a string counts as text)."""
    if isinstance(block, str):
        return Estimate(text_tokens(block))
    if not isinstance(block, dict):
        return Estimate(text_tokens(_dumps(block)))
    kind = block.get("type")
    if kind == "image":
        return Estimate(images=1)
    if kind in ("text", "thinking"):
        return Estimate(text_tokens(str(block.get(kind) or "")))
    if kind == "redacted_thinking":
        return NOTHING
    if kind == "tool_use":
        call = {"name": block.get("name"), "arguments": block.get("input") or {}}
        return Estimate(TOOL_CALL_OVERHEAD + text_tokens(_dumps(call)))
    if kind == "tool_result":
        return _content(block.get("content"))
    return Estimate(text_tokens(_dumps(block)))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
