"""Known OpenAI-compatible providers: where they live and how each turns thinking on.

A backend of ``type: openai`` may name a preset instead of a base URL, so a
user writes only the provider's name and the variable holding the key. The
thinking switch says which request field carries Ollama's ``think``:

- ``enable_thinking``: a boolean field (DashScope, SiliconFlow)
- ``thinking_type``:   ``thinking: {"type": "enabled" | "disabled"}`` (Volcengine Ark)
- ``reasoning``:       ``reasoning: {"effort": ...} | {"enabled": false}`` (OpenRouter)
- ``reasoning_effort``: ``reasoning_effort: "low" | "medium" | "high"`` (OpenAI)
- ``None``: the model decides (DeepSeek: ``deepseek-reasoner`` thinks, ``deepseek-chat`` does not)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    base_url: str
    thinking: str | None = None


PRESETS: dict[str, Preset] = {
    "deepseek": Preset("https://api.deepseek.com/v1"),
    "dashscope": Preset("https://dashscope.aliyuncs.com/compatible-mode/v1", "enable_thinking"),
    "siliconflow": Preset("https://api.siliconflow.cn/v1", "enable_thinking"),
    "volcengine": Preset("https://ark.cn-beijing.volces.com/api/v3", "thinking_type"),
    "openrouter": Preset("https://openrouter.ai/api/v1", "reasoning"),
    "openai": Preset("https://api.openai.com/v1", "reasoning_effort"),
}
