"""Share what every OpenAI endpoint's translation needs: options, usage, frames.

A request field is either *mapped* (translated into Ollama's shape and not sent
as itself), *gateway-level* (read by the gateway, never sent to Ollama), or
*passed through* unchanged: Ollama ignores what it does not know, so fields
OpenAI defines without an Ollama counterpart, and unknown fields, cost nothing
and lose nothing. A field whose value is ``null`` is dropped: in OpenAI's API
``null`` means "not set", while some Ollama fields (``format``, ``keep_alive``)
fail to decode it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.translate.ollama import cached_prompt_tokens

#: Fields the gateway reads itself and never sends to Ollama (``echo`` too, for
#: text completions: see ``openai_completion``).
GATEWAY_FIELDS = frozenset({"stream_options", "n", "exclude_reasoning"})

#: Sampling fields whose OpenAI name is also their name in Ollama's ``options``.
_SAME_NAME_OPTIONS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")

#: Request fields that ``sampling_options`` maps (so they are not passed through).
OPTION_FIELDS = frozenset({*_SAME_NAME_OPTIONS, "seed", "stop", "max_tokens",
                           "max_completion_tokens", "num_ctx", "options"})


#: OpenAI's own bound on ``n``: each choice is a whole generation on the GPU.
MAX_CHOICES = 128


@dataclass(frozen=True)
class GatewaySettings:
    """What the gateway itself does with a request, beyond the Ollama body."""

    stream: bool = False
    n: int = 1
    include_usage: bool = False
    exclude_reasoning: bool = False
    echo: bool = False


def gateway_settings(body: dict) -> GatewaySettings:
    """Read the gateway-level settings of an OpenAI request."""
    stream = stream_flag(body)
    n = body.get("n")
    if n is None:
        n = 1
    elif not _is_int(n) or not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"n must be an integer from 1 to {MAX_CHOICES}", param="n")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    return GatewaySettings(
        stream=stream,
        n=n,
        include_usage=stream and _flag(stream_options, "include_usage", "stream_options.include_usage"),
        exclude_reasoning=_flag(body, "exclude_reasoning", "exclude_reasoning"),
        echo=_flag(body, "echo", "echo"),
    )


def stream_flag(body: dict) -> bool:
    """Return the request's ``stream`` flag; OpenAI's default is ``false``."""
    return _flag(body, "stream", "stream")


def passthrough(body: dict, mapped: frozenset[str] | set[str]) -> dict:
    """Copy the fields of ``body`` that are neither mapped nor gateway-level."""
    skip = mapped | GATEWAY_FIELDS
    return {key: value for key, value in body.items() if key not in skip and value is not None}


def sampling_options(body: dict) -> dict:
    """Map OpenAI's sampling fields, ``num_ctx`` and ``options`` to Ollama's ``options``."""
    options = {}
    for name in _SAME_NAME_OPTIONS:
        if body.get(name) is not None:
            options[name] = _number(body[name], name)
    for name in ("seed", "num_ctx"):
        if body.get(name) is not None:
            options[name] = _integer(body[name], name)
    for name in ("max_tokens", "max_completion_tokens"):  # the newer name wins
        if body.get(name) is not None:
            options["num_predict"] = _integer(body[name], name)
    if body.get("stop") is not None:
        options["stop"] = _stop_list(body["stop"])
    return with_explicit_options(options, body)


def with_explicit_options(options: dict, body: dict) -> dict:
    """Merge the client's own Ollama ``options`` over the mapped ones: they win."""
    explicit = body.get("options")
    if explicit is not None:
        if not isinstance(explicit, dict):
            raise InvalidRequest("options must be an object", param="options")
        options.update(explicit)
    return options


# OpenAI's reasoning efforts on Ollama's think levels; "none" turns thinking off.
THINK_BY_EFFORT = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high",
                   "xhigh": "high", "max": "max"}


def think_from_effort(effort: object, param: str) -> bool | str:
    """Map a reasoning effort to Ollama's ``think``, or refuse an unknown one."""
    if effort not in THINK_BY_EFFORT:
        raise InvalidRequest(f"{param} must be one of {', '.join(THINK_BY_EFFORT)}", param=param)
    return THINK_BY_EFFORT[effort]


def to_openai_usage(ollama_resp: dict) -> dict:
    """Build OpenAI's ``usage`` from Ollama's token counts (missing counts are 0).

    The prompt tokens read from cache (``prompt_tokens_details.cached_tokens``) are told only where Ollama tells
    them (``prompt_eval_cached_count``, which no release up to 0.33 sends); where it does not, ``prompt_tokens_details``
    is left out, as OpenAI's usage allows (optional) and Ollama's own OpenAI API always does: a 0 would say "measured,
    none cached".
    """
    prompt = ollama_resp.get("prompt_eval_count") or 0
    completion = ollama_resp.get("eval_count") or 0
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    cached = cached_prompt_tokens(ollama_resp)
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def sum_usage(usages: list[dict | None]) -> dict:
    """Add up several ``usage`` objects (the gateway runs n generations for n > 1)."""
    prompt = sum((usage or {}).get("prompt_tokens") or 0 for usage in usages)
    completion = sum((usage or {}).get("completion_tokens") or 0 for usage in usages)
    total = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    details = [usage["prompt_tokens_details"] for usage in usages if usage and "prompt_tokens_details" in usage]
    if details:
        total["prompt_tokens_details"] = {"cached_tokens": sum(d.get("cached_tokens") or 0 for d in details)}
    return total


def merge_completions(results: list[dict]) -> dict:
    """Merge single-choice completions (chat or text) into one with every choice."""
    if not results:
        raise ValueError("merge_completions needs at least one completion")
    choices = [choice for result in results for choice in result["choices"]]
    merged = dict(results[0])
    merged["choices"] = [{**choice, "index": index} for index, choice in enumerate(choices)]
    merged["usage"] = sum_usage([result.get("usage") for result in results])
    return merged


def usage_frame(completion_id: str, created: int, model: str, usage: dict, object_name: str) -> dict:
    """Build a stream's usage chunk: OpenAI sends it last, with an empty ``choices``."""
    return {"id": completion_id, "object": object_name, "created": created, "model": model,
            "choices": [], "usage": usage}


def summed_usage_frames(converters: list[StreamLifecycle], include_usage: bool) -> list[dict]:
    """Return what follows the frames of n > 1 streams: their usage summed, once, if the client asked for it.

    With n == 1 the stream's converter sends its usage itself.
    """
    if not include_usage or len(converters) < 2:
        return []
    first = converters[0]
    usage = sum_usage([converter.usage for converter in converters])
    return [usage_frame(first.completion_id, first.created, first.model, usage, first.object_name)]


def finish_reason(done_reason: str | None, *, tool_calls: bool = False) -> str:
    """Map Ollama's ``done_reason`` to OpenAI's ``finish_reason``."""
    # Ollama says "stop" when the model called tools; OpenAI clients wait for
    # "tool_calls" before they run them.
    if tool_calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


class StreamLifecycle:
    """What every OpenAI stream converter does around its content frames.

    ``process`` each Ollama chunk, ``close`` when the upstream ends, ``fail``
    when the gateway gives up. Once finished (done, error, close or fail) the
    converter returns nothing more. Subclasses say what a chunk's content
    becomes (``_content``), what opens the stream (``_start_frames``) and what
    ends it (``_finish``).
    """

    object_name: str  # each chunk's ``object``
    completion_id: str
    created: int
    model: str

    def __init__(self) -> None:
        self.finished = False
        self.usage: dict | None = None
        self._started = False

    def process(self, ollama_chunk: dict) -> list[dict]:
        """Return the OpenAI chunks for one Ollama chunk (often one, maybe none)."""
        if self.finished:
            return []
        if "error" in ollama_chunk:
            return self.fail(ollama_error_text(ollama_chunk["error"]))
        frames = self._content(ollama_chunk)
        if ollama_chunk.get("done"):
            frames += self._start() + self._finish(ollama_chunk)
        return frames

    def close(self) -> list[dict]:
        """Return the frames owed when the upstream ends: an error if it never said done."""
        if self.finished:
            return []
        return self.fail("the upstream closed the stream before the response was complete")

    def fail(self, message: str) -> list[dict]:
        """Finish the stream with an OpenAI error frame."""
        self.finished = True
        return [error_frame(message)]

    def _start(self) -> list[dict]:
        if self._started:
            return []
        self._started = True
        return self._start_frames()

    def _content(self, ollama_chunk: dict) -> list[dict]:
        raise NotImplementedError

    def _start_frames(self) -> list[dict]:
        raise NotImplementedError

    def _finish(self, done_chunk: dict) -> list[dict]:
        raise NotImplementedError


def error_frame(message: str) -> dict:
    """Build the OpenAI error object sent as the last frame of a failed stream."""
    return {"error": {"message": message, "type": "api_error", "param": None, "code": None}}


def ollama_error_text(error: object) -> str:
    """Return the message of an Ollama ``error`` value (a string, or an object)."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return error if isinstance(error, str) else str(error)


def _stop_list(stop: object) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        return list(stop)
    raise InvalidRequest("stop must be a string or a list of strings", param="stop")


def _flag(container: dict, key: str, param: str) -> bool:
    value = container.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"{param} must be true or false", param=param)
    return value


def _is_int(value: object) -> bool:
    # bool is an int subclass in Python but never a valid count in JSON.
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(value: object, param: str) -> int:
    if not _is_int(value):
        raise InvalidRequest(f"{param} must be an integer", param=param)
    return value


def _number(value: object, param: str) -> int | float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InvalidRequest(f"{param} must be a number", param=param)
    return value


def choice_texts(answer: object) -> list[tuple[int, str]]:
    """Return each choice's index and text in an OpenAI answer or stream chunk (chat or completions)."""
    found = []
    choices = answer.get("choices") if isinstance(answer, dict) else None
    for position, choice in enumerate(choices if isinstance(choices, list) else ()):
        if not isinstance(choice, dict):
            continue
        holder = choice.get("delta") or choice.get("message")
        text = holder.get("content") if isinstance(holder, dict) else choice.get("text")
        index = choice.get("index")
        if isinstance(text, str) and text:
            found.append((index if isinstance(index, int) and not isinstance(index, bool) else position, text))
    return found
