"""Write opted-in conversations to their own JSON-lines file, images elided and secrets redacted.

Nothing is written unless ``chat_logs.enabled`` is true (every token's chats)
or a token has ``chat_log: true`` (its chats alone; ``chat_log: false`` keeps
a token out while logging is on for all). One line per chat request (native
chat and generate, OpenAI chat and completions, Anthropic messages, Responses):
when, request id, key name, path, status, the request as sent (base64 images
replaced by a marker with their size) and the answer's text as the client got
it, assembled from the stream.

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
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone

from flask import Flask, current_app, g, request

from ollama_proxy.config import ChatLogSettings, Settings
from ollama_proxy.observability.ledger import access_record
from ollama_proxy.observability.logs import RedactingFormatter, secrets_of
from ollama_proxy.translate.answer_text import answer_text

CHAT_LOGGER = "ollama_proxy.chat"
CHAT_PATHS = frozenset({"/api/chat", "/api/generate", "/v1/chat/completions", "/v1/completions", "/v1/messages",
                        "/anthropic/v1/messages", "/v1/responses"})
_IMAGE_KEYS = {"images"}
TOO_DEEP = "<request elided: nested too deeply to write>"


def _image_marker(encoded: str) -> str:
    data = encoded.split(",", 1)[1] if encoded.startswith("data:") else encoded
    size = len(data) * 3 // 4 - data[-2:].count("=")
    return f"<image elided: {size} bytes>"


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


def _tap(chunks: Iterable[bytes], limit: int, on_close: Callable[[bytes, bool], None]) -> Iterator[bytes]:
    """Pass ``chunks`` on unchanged, keeping up to ``limit`` bytes for the log, written on close."""
    kept, size, whole = [], 0, True
    try:
        for chunk in chunks:
            if size + len(chunk) <= limit:
                kept.append(chunk)
                size += len(chunk)
            else:
                whole = False
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        try:
            if close is not None:
                close()  # the upstream response goes with it, as when untapped
        finally:
            on_close(b"".join(kept), whole)


class ChatLog:
    """The chat log file of one app, and what writes a request's line to it."""

    def __init__(self, settings: Settings):
        self.settings = settings.chat_logs
        self.logger = logging.getLogger(CHAT_LOGGER)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self._secrets = secrets_of(settings)
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
            handler.setFormatter(RedactingFormatter("%(message)s", self._secrets))
            for old in list(self.logger.handlers):
                self.logger.removeHandler(old)
                old.close()
            self.logger.addHandler(handler)
            self._handler = handler
        return self.logger

    def write(self, entry: dict, content_type: str, answer: bytes, whole: bool) -> None:
        entry["answer"] = answer_text(content_type, answer)
        if not whole:
            entry["answer_truncated"] = True
        try:
            line = json.dumps(entry)
        except RecursionError:  # nested about as deep as the parser goes, and written from a deeper stack
            entry["request"] = TOO_DEEP
            line = json.dumps(entry)
        self._ready().info(line)


def note_request() -> None:
    """Keep a chat request's body for the log, when its token's chats are logged (after auth)."""
    principal = g.get("principal")
    if request.path not in CHAT_PATHS or request.method != "POST" or principal is None:
        return
    if wants_log(getattr(principal, "chat_log", None), current_app.extensions[CHAT_LOGGER].settings):
        g.chat_request = request.get_data(cache=True)  # the view reads the same cached bytes


def tap_response(response):
    """Have the answer's bytes written to the chat log with the request once it has gone out."""
    raw = g.pop("chat_request", None)
    if raw is None:
        return response
    chat_log: ChatLog = current_app.extensions[CHAT_LOGGER]
    record = access_record(request.environ)
    entry = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
             "request_id": record.request_id if record else None, "key": g.principal.name,
             "path": request.path, "status": response.status_code, "request": _request_body(raw)}
    content_type = response.mimetype
    response.response = _tap(response.response, chat_log.settings.max_answer_bytes,
                             lambda answer, whole: chat_log.write(entry, content_type, answer, whole))
    return response


def init_app(app: Flask) -> None:
    """Log opted-in chats; register after auth, which names the principal."""
    app.extensions[CHAT_LOGGER] = ChatLog(app.config["SETTINGS"])
    app.before_request(note_request)
    app.after_request(tap_response)
