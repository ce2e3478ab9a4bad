"""The benchmark's clients: one streamed chat per call, timed, and able to give up by closing the socket.

Each question's prompt opens with a label naming who asked and which question it is
("person-2#7"); the fake answers "You said: <prompt>", one token a word, so the label also finds
the request again in the fake's records (``record.origin``), whichever way it came.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MODEL = "llama3.2"
READ_TIMEOUT = 600.0
ECHO_TOKENS = 2  # "You said: " before the prompt's words


@dataclass
class Answer:
    """One question and what became of it, on the benchmark's clock."""

    label: str
    principal: str
    asked_at: float
    status: int | None = None  # None: no answer came before the client left
    first_token_at: float | None = None
    finished_at: float | None = None  # its last byte came
    left_at: float | None = None  # the client closed the connection before the end
    broken: bool = False  # the connection failed before the end

    @property
    def served(self) -> bool:
        return self.status == 200 and self.finished_at is not None

    @property
    def refused(self) -> bool:
        """Tell whether the request was answered with an error, or its connection failed."""
        return self.broken or (self.status is not None and self.status != 200)

    @property
    def ended_at(self) -> float:
        return next(t for t in (self.finished_at, self.left_at, self.first_token_at, self.asked_at) if t is not None)


def prompt(label: str, tokens: int, instruction: str = "") -> str:
    """Return a prompt the fake answers in exactly tokens tokens: label on a line of its own, then instruction.

    The fake echoes the prompt a word a token, so words are added after the instruction up to tokens; an
    instruction longer than that makes the answer longer too.
    """
    words = instruction.split()
    return f"{label}\n" + " ".join(words + ["w"] * (tokens - ECHO_TOKENS - 1 - len(words)))


def label_of(body: object) -> str | None:
    """Return the label a chat request's last message opens with, if it has one."""
    try:
        return body["messages"][-1]["content"].split(maxsplit=1)[0]
    except (TypeError, KeyError, IndexError, AttributeError):
        return None


def ask(url: str, token: str | None, principal: str, number: int, tokens: int, *, options: dict | None = None,
        first_token_within: float | None = None, hangup: Hangup | None = None, instruction: str = "") -> Answer:
    """Stream one chat to url and time it.

    The client leaves (closes its socket) if no token came within first_token_within seconds, or
    when hangup is called, whatever it got by then.
    """
    answer = Answer(f"{principal}#{number}", principal, time.monotonic())
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt(answer.label, tokens, instruction)}]}
    if options:
        body["options"] = options
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    give_up = answer.asked_at + first_token_within if first_token_within is not None else None
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=READ_TIMEOUT)
    sock, done = None, False
    try:
        connection.connect()
        sock = connection.sock
        if hangup is not None and not hangup.track(sock):
            raise TimeoutError
        connection.request("POST", "/api/chat", json.dumps(body), headers)
        _wait_until(sock, give_up)
        response = connection.getresponse()
        answer.status = response.status
        if response.status != 200:
            response.read()
            return answer
        while True:
            _wait_until(sock, None if answer.first_token_at else give_up)
            line = response.readline()
            if not line:
                break
            chunk = json.loads(line)
            if answer.first_token_at is None and chunk.get("message", {}).get("content"):
                answer.first_token_at = time.monotonic()
            done = bool(chunk.get("done"))
        if done:
            answer.finished_at = time.monotonic()
    except TimeoutError:
        sock.shutdown(socket.SHUT_RDWR)  # the server sees the client go now, not when the last reference closes
        answer.left_at = time.monotonic()
    except (http.client.HTTPException, OSError, ValueError):
        pass
    finally:
        if hangup is not None and sock is not None:
            hangup.forget(sock)
        connection.close()
    if not done and answer.left_at is None:
        if hangup is not None and hangup.at is not None:
            answer.left_at = hangup.at
        else:
            answer.broken = True
    return answer


class Hangup:
    """Closes the connections of a group of clients at once, as stopping a batch job does."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()

    def track(self, sock: socket.socket) -> bool:
        """Watch a client's socket; False if the hangup came already."""
        with self._lock:
            if self.at is None:
                self._socks.add(sock)
            return self.at is None

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)

    def __call__(self) -> None:
        """Close every watched connection now."""
        with self._lock:
            self.at = time.monotonic()
            for sock in self._socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _wait_until(sock: socket.socket, deadline: float | None) -> None:
    """Make the socket's reads time out at deadline (None: after READ_TIMEOUT)."""
    if deadline is None:
        sock.settimeout(READ_TIMEOUT)
    else:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)


class Tally:
    """The answers of one run, gathered from many client threads."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self._lock = threading.Lock()

    def add(self, answer: Answer) -> Answer:
        with self._lock:
            self.answers.append(answer)
        return answer

    def of(self, *principals: str) -> list[Answer]:
        return [answer for answer in self.answers if answer.principal in principals]


def run_all(*bodies: Callable[[], None]) -> None:
    """Run each body in a thread of its own and wait for them all."""
    threads = [threading.Thread(target=body) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
