"""A fake GPU server in a process of its own, answering the benchmark's questions about what it ran.

Run in the benchmark's process, a fake's work (tokenizing an agent's 40k-token prompt, streaming 24 answers)
shares the GIL with the clients that time first tokens, and its cost shows in the proxy's figures. Apart, it
costs the host's cores as a real server would, and nothing more. Its records keep their times: the fake stamps
them with ``time.monotonic``, one clock for every process on the machine.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from multiprocessing.connection import Connection

from bench.scheduling.client import label_of
from tests.fakes.ollama import FakeOllama
from tests.fakes.ollama_runner import RequestRecord, SchedulerStats

STOP = "stop"
ANSWER_WITHIN = 60.0  # seconds a fake has to answer a question about its records


class FakeApart:
    """A FakeOllama in a child process: its URL, and what its scheduler saw."""

    def __init__(self, settings: dict, model: str, script: dict) -> None:
        """Start FakeOllama(**settings) in a child process, model scripted to answer as Behavior(**script)."""
        context = multiprocessing.get_context("spawn")  # the benchmark's threads do not survive a fork
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=serve, args=(theirs, settings, model, script), daemon=True,
                                        name="fake-ollama")
        self._process.start()
        self.url: str = self._ask(None)

    def records(self) -> list[tuple[str | None, RequestRecord]]:
        """Return every request the fake's scheduler saw, each with the label of the question it ran."""
        return self._ask("records")

    def stats(self) -> SchedulerStats:
        return self._ask("stats")

    def contexts_loaded(self) -> list[int]:
        """Return the context length of each runner loaded now."""
        return self._ask("contexts")

    def stop(self) -> None:
        self._pipe.send(STOP)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def _ask(self, question: str | None):
        if question is not None:
            self._pipe.send(question)
        if not self._pipe.poll(ANSWER_WITHIN):
            raise RuntimeError(f"the fake Ollama at {getattr(self, 'url', '?')} did not answer {question!r}")
        return self._pipe.recv()


def serve(pipe: Connection, settings: dict, model: str, script: dict) -> None:
    """The child: serve the fake and answer the parent's questions until told to stop."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake's access lines
    fake = FakeOllama(**settings).start()
    fake.script(model, **script)
    pipe.send(fake.url)
    answers = {"records": lambda: labelled(fake), "stats": fake.scheduler.stats,
               "contexts": lambda: [runner.context_length for runner, _ in fake.scheduler.loaded()]}
    try:
        for question in iter(pipe.recv, STOP):
            pipe.send(answers[question]())
    finally:
        fake.stop()


def labelled(fake: FakeOllama) -> list[tuple[str | None, RequestRecord]]:
    """Return the fake's records, each with its question's label, stripped of what cannot cross processes."""
    return [(label_of(record.origin.json if record.origin is not None else None),
             dataclasses.replace(record, present=None, origin=None)) for record in fake.scheduler.records()]
