"""Calls that come together, made as one: every budgeted request reads its spend and adds its charge through here.

The first caller leads: it lets the other greenlets that are ready run first
(``pause``), then makes one call of ``serve`` for every item that came meanwhile,
its own among them, and hands each its answer. A caller that comes while a
leader gathers waits for it. Each call of ``serve`` starts after every item it
serves was given: a read that serves a request was made after that request
asked, so gathering loses nothing of what a read alone would have seen.

With one request at a time the leader serves its own item alone, at once: the
cost is one ``pause``. With many, one statement serves many requests.

A leader that dies (its greenlet killed, as a stopping worker kills them) passes
the lead to the next caller waiting: no caller is left waiting on a leader that
is gone. What it was serving as it died is served again by the next leader, or,
where serving twice could do a thing twice (a charge whose commit may have
landed), answered with ``interrupted()`` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class _Call(Generic[Item, Answer]):
    __slots__ = ("item", "answer", "error", "answered", "lead")

    def __init__(self, item: Item):
        self.item = item
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self.answered = threading.Event()  # set once answered, or once told to lead
        self.lead = False

    def outcome(self) -> Answer:
        if self.error is not None:
            raise self.error
        return self.answer


class Together(Generic[Item, Answer]):
    """``together(item)`` answers ``serve(items)[i]`` for its item, served with those that came with it.

    ``serve`` answers every item of its list, in order, or raises: each caller of that call then raises it.
    """

    def __init__(self, serve: Callable[[list[Item]], Sequence[Answer]], pause: Callable[[], None],
                 interrupted: Callable[[], Exception] | None = None):
        self._serve = serve
        self._pause = pause
        self._interrupted = interrupted  # None: a call cut short by its leader's death is served again
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self._leading = False

    def __call__(self, item: Item) -> Answer:
        call = _Call(item)
        with self._lock:
            self._waiting.append(call)
            follows, self._leading = self._leading, True
        if follows:
            try:
                call.answered.wait()
            except BaseException:  # killed while it waited: it neither waits nor leads any more
                self._leave(call)
                raise
            if not call.lead:
                return call.outcome()
        self._lead(call)
        return call.outcome()

    def _lead(self, own: _Call) -> None:
        batch: list[_Call] = []
        try:
            self._pause()
            while True:
                with self._lock:
                    batch, self._waiting = self._waiting, []
                    if not batch:
                        self._leading = False
                        return
                self._answer(batch)
        except BaseException:
            unanswered = [call for call in batch if not call.answered.is_set() and call is not own]
            if self._interrupted is not None:
                for call in unanswered:
                    call.error = self._interrupted()
                    call.answered.set()
                unanswered = []
            with self._lock:
                self._waiting = [call for call in unanswered + self._waiting if call is not own]
                self._pass_lead()
            raise

    def _answer(self, batch: list[_Call]) -> None:
        try:
            answers = self._serve([call.item for call in batch])
        except Exception as exc:
            for call in batch:
                call.error = exc
        else:
            for call, answer in zip(batch, answers, strict=True):
                call.answer = answer
        for call in batch:
            call.answered.set()

    def _leave(self, call: _Call) -> None:
        with self._lock:
            if call in self._waiting:
                self._waiting.remove(call)
            if call.lead:  # told to lead as it was killed: the next one leads
                self._pass_lead()

    def _pass_lead(self) -> None:
        """Tell the first caller waiting to lead, or stop leading if none waits (called holding the lock)."""
        if self._waiting:
            heir = self._waiting[0]
            heir.lead = True
            heir.answered.set()
        else:
            self._leading = False
