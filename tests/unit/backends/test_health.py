import pytest

from ollama_proxy.backends.health import ProbeCache, overall_status
from tests.fakes.clock import ManualClock


def ollama(state: str) -> dict:
    return {"type": "ollama", "ok": state != "down", "state": state}


PROVIDER = {"type": "openai", "ok": True, "state": "configured"}


@pytest.mark.parametrize("upstreams, status", [
    ([ollama("ok")], "ok"),
    ([ollama("ok"), PROVIDER], "ok"),
    ([ollama("ok"), ollama("down")], "degraded"),
    ([ollama("cooling down")], "degraded"),
    ([ollama("down")], "down"),
    ([ollama("down"), ollama("down"), PROVIDER], "down"),  # a provider serves no local model
])
def test_overall_status(upstreams, status):
    assert overall_status(upstreams) == status


@pytest.mark.parametrize("seconds, later, probes", [
    (2.0, [0.5, 1.9], 1),  # within the period: the first probe's answer
    (2.0, [0.5, 2.0], 2),  # the period is over: a new probe
    (2.0, [3.0, 3.1, 4.9], 2),  # the new probe starts a new period
    (0.0, [0.0, 0.0], 3),  # no cache: every call probes
])
def test_the_probe_cache_probes_once_a_period(seconds, later, probes):
    clock, calls = ManualClock(), []
    cache = ProbeCache(seconds, clock)

    def probe():
        calls.append(clock.now)
        return [{"probe": len(calls)}]

    answers = [cache.get(probe)]
    for offset in later:
        clock.now = 100.0 + offset
        answers.append(cache.get(probe))
    assert len(calls) == probes
    assert answers[-1] == [{"probe": probes}]
