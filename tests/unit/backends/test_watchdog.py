import time

import gevent
import pytest

from ollama_proxy.backends.watchdog import CHECKS, IdleWatchdog

LIMIT = 0.2


class Cuts(list):
    """The times a watchdog fired, and when the test began."""

    def __init__(self):
        super().__init__()
        self.started = time.monotonic()


@pytest.fixture
def cuts():
    return Cuts()


def test_a_wait_longer_than_the_limit_is_cut_once_between_the_limit_and_one_check_later(cuts):
    watchdog = IdleWatchdog(LIMIT, lambda: cuts.append(time.monotonic()))
    watchdog.since = time.monotonic()
    gevent.sleep(3 * LIMIT)
    watchdog.close()
    assert watchdog.fired and len(cuts) == 1
    assert LIMIT <= cuts[0] - cuts.started < LIMIT * (1 + 2 / CHECKS)


def test_short_waits_adding_up_past_the_limit_are_not_cut(cuts):
    watchdog = IdleWatchdog(LIMIT, lambda: cuts.append(time.monotonic()))
    for _ in range(6):
        watchdog.since = time.monotonic()
        gevent.sleep(LIMIT / 2)
        watchdog.since = None
    watchdog.close()
    assert not watchdog.fired and cuts == []


def test_time_spent_not_waiting_is_not_silence(cuts):
    watchdog = IdleWatchdog(LIMIT, lambda: cuts.append(time.monotonic()))
    watchdog.since = time.monotonic()
    watchdog.since = None
    gevent.sleep(3 * LIMIT)  # the reader is busy elsewhere, e.g. writing to a slow client
    watchdog.close()
    assert not watchdog.fired and cuts == []


def test_a_closed_watchdog_never_fires(cuts):
    watchdog = IdleWatchdog(LIMIT, lambda: cuts.append(time.monotonic()))
    watchdog.since = time.monotonic()
    watchdog.close()
    watchdog.close()  # closing twice is harmless: the stream's end and its close both do it
    gevent.sleep(2 * LIMIT)
    assert not watchdog.fired and cuts == []
