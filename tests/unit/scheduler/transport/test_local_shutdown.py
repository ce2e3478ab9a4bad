"""A stopping arbiter's worker says nothing of the lines it closes; a line that fails while it decides is logged."""

import logging
import socket
import uuid

import gevent
import pytest

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.servers import ServerSpec
from ollama_proxy.scheduler.transport.local import LocalScheduler

FAILED = "a worker's scheduler connection failed"


@pytest.fixture
def arbiter_and_worker(tmp_path):
    """The arbiter's worker, and another worker whose line to it is open."""
    name = f"test-{uuid.uuid4().hex}"

    def local():
        return LocalScheduler(str(tmp_path), lambda: Scheduler([ServerSpec("gpu1", num_parallel=2)], Bounds()), 5.0,
                              instance=name)
    arbiter, worker = local(), local()
    arbiter.client()
    with gevent.Timeout(5):
        while arbiter.arbiter is None:
            gevent.sleep(0.01)
        worker.client().admit(Ticket("t1", Share("bob"), "m", ("gpu1",)))  # the worker dials on its first request
        while not arbiter._workers:
            gevent.sleep(0.01)
    yield arbiter, worker
    worker.resign()
    arbiter.resign()


def _close_under_the_reader(arbiter: LocalScheduler) -> None:
    """What happens to the arbiter's lines as its worker's process ends: closed while their greenlets read."""
    for line in list(arbiter._workers):
        line.sock.shutdown(socket.SHUT_RDWR)
        line.sock.close()
    gevent.sleep(0.1)


def test_lines_closed_after_resigning_are_not_logged_as_faults(arbiter_and_worker, caplog):
    arbiter, _ = arbiter_and_worker
    lines = list(arbiter._workers)
    caplog.set_level(logging.WARNING, logger="ollama_proxy.scheduler.transport.local")
    arbiter.resign()
    arbiter._workers.update(lines)  # their readers have not run since
    _close_under_the_reader(arbiter)
    assert FAILED not in caplog.text


def test_a_line_that_fails_while_deciding_is_logged(arbiter_and_worker, caplog):
    arbiter, _ = arbiter_and_worker
    caplog.set_level(logging.WARNING, logger="ollama_proxy.scheduler.transport.local")
    _close_under_the_reader(arbiter)
    assert f"{FAILED}: [Errno 9]" in caplog.text
