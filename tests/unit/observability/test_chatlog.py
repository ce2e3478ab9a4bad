"""Images elided from logged requests; who gets logged; a closed chat's record written as one line."""

from __future__ import annotations

import base64
import json

import pytest

from ollama_proxy.config import ChatLogSettings, parse_settings
from ollama_proxy.ledger import AnswerText, RequestRecord
from ollama_proxy.observability.chatlog import TOO_DEEP, ChatLog, _request_body, chat_entry, elide_images, wants_log

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
    if log._handler is not None:
        log.logger.removeHandler(log._handler)
        log._handler.close()


def chat_record(body: bytes, *texts: tuple[int, str], limit: int = 100) -> RequestRecord:
    record = RequestRecord("r1", "POST", "/v1/chat/completions", "10.0.0.1", 0.0, status=200, principal="alice",
                           chat_request=body, answer=AnswerText(limit))
    for choice, text in texts:
        record.answer.add(text, choice)
    return record


def test_a_closed_chat_is_one_line_with_its_request_and_the_text_its_taps_kept(chat_log, tmp_path):
    chat_log.write(chat_record(b'{"model": "m", "n": 2}', (1, "second "), (0, "first "), (1, "choice"), (0, "one")))
    line = json.loads((tmp_path / "chat.jsonl").read_text())
    assert line.pop("ts").endswith("Z")
    assert line == {"request_id": "r1", "key": "alice", "path": "/v1/chat/completions", "status": 200,
                    "request": {"model": "m", "n": 2}, "answer": "first onesecond choice"}


def test_text_past_the_limit_is_left_out_and_the_line_says_so(chat_log, tmp_path):
    chat_log.write(chat_record(b"{}", (0, "héllo"), (0, " world"), (0, "!"), limit=8))
    line = json.loads((tmp_path / "chat.jsonl").read_text())
    assert (line["answer"], line["answer_truncated"]) == ("héllo!", True)  # é is two bytes: 6 + 1 of 8


def test_a_record_that_is_no_logged_chat_writes_nothing(chat_log, tmp_path):
    chat_log.write(RequestRecord("r2", "POST", "/v1/chat/completions", "10.0.0.1", 0.0, status=200))
    assert chat_log._handler is None and not (tmp_path / "chat.jsonl").exists()


def test_a_request_too_deep_to_write_is_logged_without_it(chat_log, tmp_path):
    chat_log.write_line({"path": "/v1/chat/completions", "request": {"x": nested(10_000, [])}, "answer": "hi"})
    line = json.loads((tmp_path / "chat.jsonl").read_text())
    assert line == {"path": "/v1/chat/completions", "request": TOO_DEEP, "answer": "hi"}


@pytest.mark.parametrize("choice, enabled, logged", [
    (None, False, False), (None, True, True), (True, False, True), (False, True, False),
])
def test_wants_log(choice, enabled, logged):
    assert wants_log(choice, ChatLogSettings(enabled, "chat.jsonl", 1000, 2, 100)) is logged


def test_a_request_longer_than_its_bound_is_written_as_its_first_and_last_halves_with_its_size():
    image = base64.b64encode(bytes(range(256)) * 40).decode()
    messages = [{"role": "user", "content": "é" * 3000, "images": [image]}, {"role": "user", "content": "what failed?"}]
    raw = json.dumps({"model": "m", "messages": messages}).encode()
    record = RequestRecord("r3", "POST", "/api/chat", "10.0.0.1", 0.0, status=200)
    record.chat_request = raw
    entry = chat_entry(record, max_request_bytes=len(raw) - 1000)
    assert entry["request_truncated"] is True and entry["request_bytes"] == len(raw)
    assert entry["request"].startswith('{"model": "m"') and entry["request"].endswith('"what failed?"}]}')
    assert " bytes elided> " in entry["request"] and len(entry["request"].encode()) < len(raw) - 1000
    assert image not in entry["request"] and "<base64 elided: 10240 bytes>" in entry["request"]
    assert "request_truncated" not in chat_entry(record, max_request_bytes=len(raw))
