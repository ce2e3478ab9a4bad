"""Write opted-in conversations to their own JSON-lines file, images elided and secrets redacted.

Nothing is written unless ``chat_logs.enabled`` is true (every token's chats)
or a token has ``chat_log: true`` (its chats alone; ``chat_log: false`` keeps
a token out while logging is on for all). One line per chat request (native
chat and generate, OpenAI chat and completions, Anthropic messages, Responses):
when, request id, key name, path, status, the request as sent (base64 images
replaced by a marker with their size) and the answer's text, kept by the
ledger's stream taps as it passed (``ledger.AnswerText``), written when the
response closes (a close listener). n choices' texts follow one another.

The file (``chat_logs.file`` in the log directory) is rotated by size
(``chat_logs.max_bytes``, keeping ``chat_logs.backup_count`` files) by the
workers themselves, under a file lock (concurrent-log-handler), so lines from
several workers land whole and one rotation happens once. Its name does not end
in ``.log``: deploy/logrotate, which rotates ``*.log``, leaves it alone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from datetime import datetime, timedelta, timezone

from flask import Flask, current_app, request

from ollama_proxy.config import ChatLogSettings, Settings
from ollama_proxy.greenlets import OFF_LOOP_BYTES, off_loop, read_in_pieces
from ollama_proxy.ledger import (
    AnswerText,
    RequestRecord,
    access_record,
    add_close_listener,
)
from ollama_proxy.observability.logs import RedactingFormatter, secrets_of
from ollama_proxy.surfaces import is_chat

CHAT_LOGGER = "ollama_proxy.chat"
_IMAGE_KEYS = {"images"}
TOO_DEEP = "<request elided: nested too deeply to write>"
# An image's base64 in a request too long to parse for the line: no text of a chat runs this long unbroken.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{1024,}={0,2}")


def _image_marker(encoded: str) -> str:
    data = encoded.split(",", 1)[1] if encoded.startswith("data:") else encoded
    return f"<image elided: {_decoded_size(data)} bytes>"


def _decoded_size(data: str) -> int:
    return len(data) * 3 // 4 - data[-2:].count("=")


def elide_images(value):
    """Return ``value`` with every base64 image replaced by a marker that keeps its size.

    A loop, not recursion: an unknown field may be nested as deep as the JSON parser goes, deeper
    than Python's stack. Containers are copied, then their slots filled in place, keeping key order.
    """
    top = [value]
    pending = [(top, 0, None, None)]  # (container, slot, key the value is under, dict holding it)
    while pending:
        into, slot, key, parent = pending.pop()
        item = into[slot]
        if isinstance(item, dict):
            into[slot] = copy = dict(item)
            pending.extend((copy, k, k, item) for k in copy)
        elif isinstance(item, list):
            into[slot] = copy = list(item)
            for index, entry in enumerate(copy):
                if key in _IMAGE_KEYS and isinstance(entry, str):
                    copy[index] = _image_marker(entry)
                else:
                    pending.append((copy, index, None, None))
        elif isinstance(item, str) and _is_image_data(item, key, parent):
            into[slot] = _image_marker(item)
    return top[0]


def _is_image_data(text: str, key: str | None, parent: dict | None) -> bool:
    if text.startswith("data:") and ";base64," in text[:200]:
        return True
    # Anthropic's {"type": "base64", "media_type", "data"}
    return key == "data" and parent is not None and parent.get("type") == "base64"


def wants_log(chat_log: bool | None, settings: ChatLogSettings) -> bool:
    """Decide from a token's own choice (None: none made) and the global switch."""
    return settings.enabled if chat_log is None else chat_log


def _request_body(raw: bytes):
    try:
        return elide_images(json.loads(raw))
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes: kept as text
        return raw.decode("utf-8", "replace")


class ChatLog:
    """The chat log file of one app, and what writes a request's line to it."""

    def __init__(self, settings: Settings):
        self.settings = settings.chat_logs
        self.logger = logging.getLogger(CHAT_LOGGER)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self._redactor = RedactingFormatter("%(message)s", secrets_of(settings))
        self._dir = settings.logging.dir
        self._handler: logging.Handler | None = None

    def _ready(self) -> logging.Logger:
        # Opened on first use, in the worker: a lock file handle must not cross a fork.
        if self._handler is None:
            # Imported here: it brings portalocker and redis, megabytes in every worker that logs no chat.
            from concurrent_log_handler import ConcurrentRotatingFileHandler

            path = os.path.join(self._dir, self.settings.file)
            handler = ConcurrentRotatingFileHandler(path, maxBytes=self.settings.max_bytes,
                                                    backupCount=self.settings.backup_count, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(message)s"))  # each line comes redacted (``line``)
            for old in list(self.logger.handlers):
                self.logger.removeHandler(old)
                old.close()
            self.logger.addHandler(handler)
            self._handler = handler
        return self.logger

    def write(self, record: RequestRecord) -> None:
        """Write the line of a chat whose response has closed (a close listener: every record comes by)."""
        if record.chat_request is None:
            return
        def make() -> str:
            return self.line(chat_entry(record, self.settings.max_request_bytes))
        self._ready().info(off_loop(make) if len(record.chat_request) > OFF_LOOP_BYTES else make())

    def write_line(self, entry: dict) -> None:
        self._ready().info(self.line(entry))

    def line(self, entry: dict) -> str:
        """The log line of ``entry``: JSON, every configured secret and URL password blanked."""
        try:
            line = json.dumps(entry)
        except RecursionError:  # nested about as deep as the parser goes, and written from a deeper stack
            entry["request"] = TOO_DEEP
            line = json.dumps(entry)
        return self._redactor.redact(line)


def chat_entry(record: RequestRecord, max_request_bytes: int | None = None) -> dict:
    """Return the chat log's line for a logged chat's record: when, who, what was asked and answered (a request
    of more than ``max_request_bytes`` as the text of its two ends)."""
    started = datetime.now(timezone.utc) - timedelta(seconds=time.perf_counter() - record.started)
    raw = record.chat_request or b""
    too_long = max_request_bytes is not None and len(raw) > max_request_bytes
    entry = {"ts": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
             "request_id": record.request_id, "key": record.principal, "path": record.path,
             "status": record.status, "request": _ends_of(raw, max_request_bytes) if too_long else _request_body(raw),
             "answer": record.answer.text() if record.answer is not None else ""}
    if record.answer is not None and not record.answer.whole:
        entry["answer_truncated"] = True
    if too_long:
        entry.update(request_truncated=True, request_bytes=len(raw))
    return entry


def _ends_of(raw: bytes, max_bytes: int) -> str:
    """A request too long for a line as the text of its first and last halves of ``max_bytes``, base64 elided.

    Never parsed whole: the parser holds the interpreter throughout, a thread's as much as the loop's (45 MB took
    0.2 s), and the line would drop the middle anyway. Its end is kept as well as its start: a conversation's latest
    turn is its last message.
    """
    half = max_bytes // 2
    start, end = (_without_base64(part.decode("utf-8", "ignore")) for part in (raw[:half], raw[-half:]))
    return f"{start} <{len(raw) - 2 * half} bytes elided> {end}"


def _without_base64(text: str) -> str:
    return _BASE64_RUN.sub(lambda run: f"<base64 elided: {_decoded_size(run.group())} bytes>", text)


def note_request() -> None:
    """Have a chat request's body and answer text kept on its record, when its token's chats are logged (after auth).

    The stream taps keep the answer's text as it passes (``ledger.AnswerText``); the line is written when the
    response closes.
    """
    record = access_record(request.environ)
    principal = None if record is None else record.caller
    if request.method != "POST" or principal is None or not is_chat(request.path):
        return
    chat_log: ChatLog = current_app.extensions[CHAT_LOGGER]
    if wants_log(getattr(principal, "chat_log", None), chat_log.settings):
        record.chat_request = read_in_pieces(request)  # the view reads the same cached bytes
        record.answer = AnswerText(chat_log.settings.max_answer_bytes)


def init_app(app: Flask) -> None:
    """Log opted-in chats; register after auth, which names the principal."""
    chat_log = app.extensions[CHAT_LOGGER] = ChatLog(app.config["SETTINGS"])
    app.before_request(note_request)
    add_close_listener(app, chat_log.write)
