"""What the client surfaces send and answer: chats showing images, and errors in each surface's shape."""

from __future__ import annotations

import requests

IMAGE_SURFACES = ["openai", "anthropic", "responses"]


def image_request(surface: str, urls: list[str]) -> tuple[str, str, dict]:
    """Return (path, error dialect, body) of a chat on ``surface`` showing the images at ``urls``."""
    if surface == "openai":
        parts = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
        return "/v1/chat/completions", "openai", {"model": "llava", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, *parts]}]}
    if surface == "anthropic":
        parts = [{"type": "image", "source": {"type": "url", "url": url}} for url in urls]
        return "/v1/messages", "anthropic", {"model": "llava", "max_tokens": 8, "messages": [{
            "role": "user", "content": [*parts, {"type": "text", "text": "What is this?"}]}]}
    parts = [{"type": "input_image", "image_url": url} for url in urls]
    return "/v1/responses", "openai", {"model": "llava", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"}, *parts]}]}


def assert_error_shape(dialect: str, answer: requests.Response) -> str:
    """Check an error answer is JSON in the dialect's shape; return its message."""
    assert answer.headers.get("Content-Type", "").startswith("application/json"), answer.text[:300]
    body = answer.json()
    if dialect == "ollama":
        assert set(body) == {"error"} and isinstance(body["error"], str), body
        return body["error"]
    if dialect == "openai":
        assert set(body) == {"error"} and set(body["error"]) >= {"message", "type", "param", "code"}, body
        assert isinstance(body["error"]["message"], str) and isinstance(body["error"]["type"], str)
        return body["error"]["message"]
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
    assert isinstance(body["error"]["message"], str) and isinstance(body["error"]["type"], str)
    return body["error"]["message"]
