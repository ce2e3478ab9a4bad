"""Images elided from logged requests; who gets logged; a tapped body passes unchanged."""

from __future__ import annotations

import base64
import json

import pytest

from ollama_proxy.config import ChatLogSettings, parse_settings
from ollama_proxy.observability.chatlog import TOO_DEEP, ChatLog, _request_body, _tap, elide_images, wants_log

PNG = base64.b64encode(b"\x89PNG" + b"\x00" * 96).decode()  # 100 bytes
MARK = "<image elided: 100 bytes>"


@pytest.mark.parametrize("body, elided", [
    ({"model": "m", "messages": [{"role": "user", "content": "hi", "images": [PNG]}]},
     {"model": "m", "messages": [{"role": "user", "content": "hi", "images": [MARK]}]}),
    ({"prompt": "what", "images": [PNG, PNG]}, {"prompt": "what", "images": [MARK, MARK]}),
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]},
     {"messages": [{"role": "user", "content": [
         {"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": MARK}}]}]}),
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]},
     {"messages": [{"role": "user", "content": [
         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": MARK}}]}]}),
    ({"messages": [{"content": [{"type": "image_url", "image_url": {"url": "https://x.lan/cat.png"}}]}]},
     {"messages": [{"content": [{"type": "image_url", "image_url": {"url": "https://x.lan/cat.png"}}]}]}),
    ({"data": "plain text", "type": "text"}, {"data": "plain text", "type": "text"}),
])
def test_elide_images(body, elided):
    assert elide_images(body) == elided


def test_elide_images_keeps_the_order_of_keys_and_leaves_its_input_alone():
    body = {"z": 1, "images": [PNG], "a": {"y": 2, "b": 3}}
    elided = elide_images(body)
    assert list(elided) == ["z", "images", "a"] and list(elided["a"]) == ["y", "b"]
    assert body["images"] == [PNG]


def nested(levels: int, bottom) -> list:
    value = bottom
    for _ in range(levels):
        value = [value]
    return value


def test_elide_images_walks_nesting_deeper_than_the_stack():
    elided = elide_images({"model": "m", "x": nested(10_000, {"images": [PNG]})})
    value = elided["x"]
    for _ in range(10_000):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == {"images": [MARK]}


def test_a_request_body_deeper_than_the_parser_goes_is_kept_as_text():
    raw = b'{"x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert _request_body(raw) == raw.decode()


@pytest.fixture
def chat_log(tmp_path):
    log = ChatLog(parse_settings({"logging": {"dir": str(tmp_path)}}, environ={}))
    yield log
    log.logger.removeHandler(log._handler)
    log._handler.close()


def test_a_request_too_deep_to_write_is_logged_without_it(chat_log, tmp_path):
    entry = {"path": "/v1/chat/completions", "request": {"x": nested(10_000, [])}}
    chat_log.write(entry, "application/json", b'{"choices": [{"message": {"content": "hi"}}]}', True)
    line = json.loads((tmp_path / "chat.jsonl").read_text())
    assert line == {"path": "/v1/chat/completions", "request": TOO_DEEP, "answer": "hi"}


@pytest.mark.parametrize("choice, enabled, logged", [
    (None, False, False), (None, True, True), (True, False, True), (False, True, False),
])
def test_wants_log(choice, enabled, logged):
    assert wants_log(choice, ChatLogSettings(enabled, "chat.jsonl", 1000, 2, 100)) is logged


class Body:
    def __init__(self, chunks):
        self.chunks, self.closed = chunks, False

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("limit, kept, whole", [(100, b"abcdef", True), (4, b"abc", False)])
def test_tap_passes_every_chunk_and_keeps_up_to_the_limit(limit, kept, whole):
    seen = []
    body = Body([b"abc", b"def"])
    assert list(_tap(body, limit, lambda answer, complete: seen.append((answer, complete)))) == [b"abc", b"def"]
    assert seen == [(kept, whole)] and body.closed


def test_tap_closed_early_closes_the_body_and_logs_what_went_out():
    seen = []
    body = Body([b"one", b"two", b"three"])
    tapped = _tap(body, 100, lambda answer, complete: seen.append(answer))
    assert next(tapped) == b"one"
    tapped.close()  # the client left
    assert body.closed and seen == [b"one"]
