"""Translate between OpenAI's API and Ollama's native API: the public names.

The work is split by endpoint: ``openai_chat`` (chat requests),
``openai_chat_response`` (chat responses and streams), ``openai_completion``
(text completions), ``openai_embeddings``, ``openai_models``, and
``openai_common`` (options, usage, gateway-level settings, error frames).
Requests go ``from_openai_*`` to Ollama; responses come ``to_openai_*`` back.
"""

from __future__ import annotations

from ollama_proxy.translate.openai_chat import from_openai_chat, from_openai_messages
from ollama_proxy.translate.openai_chat_response import (
    ChatStreamConverter,
    to_openai_chat_completion,
    to_openai_logprobs,
    to_openai_tool_calls,
)
from ollama_proxy.translate.openai_common import (
    GatewaySettings,
    error_frame,
    gateway_settings,
    merge_completions,
    sum_usage,
    summed_usage_frames,
    usage_frame,
)
from ollama_proxy.translate.openai_completion import (
    CompletionStreamConverter,
    from_openai_completion,
    to_openai_completion,
)
from ollama_proxy.translate.openai_embeddings import (
    encoding_format,
    from_openai_embeddings,
    to_openai_embeddings,
)
from ollama_proxy.translate.openai_models import to_openai_model, to_openai_model_list

__all__ = [
    "ChatStreamConverter",
    "CompletionStreamConverter",
    "GatewaySettings",
    "encoding_format",
    "error_frame",
    "from_openai_chat",
    "from_openai_completion",
    "from_openai_embeddings",
    "from_openai_messages",
    "gateway_settings",
    "merge_completions",
    "sum_usage",
    "summed_usage_frames",
    "to_openai_chat_completion",
    "to_openai_completion",
    "to_openai_embeddings",
    "to_openai_logprobs",
    "to_openai_model",
    "to_openai_model_list",
    "to_openai_tool_calls",
    "usage_frame",
]
