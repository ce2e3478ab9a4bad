import pytest

from ollama_proxy.scheduler.decisions.estimates import Estimates


def test_defaults_until_observed_then_a_moving_average():
    est = Estimates(default_slot_seconds=5.0, default_load_seconds=10.0)
    assert est.slot_seconds("m") == 5.0 and est.load_seconds("m", "gpu1") == 10.0
    est.ended("m", 2.0, now=1.0)
    assert est.slot_seconds("m") == 2.0
    est.ended("m", 12.0, now=2.0)
    assert est.slot_seconds("m") == 4.0  # 2 + 0.2 × (12 - 2)


def test_a_load_seen_on_one_server_stands_in_for_the_others():
    est = Estimates(default_load_seconds=10.0)
    est.loaded("m", "gpu1", 3.0)
    assert est.load_seconds("m", "gpu1") == 3.0 and est.load_seconds("m", "gpu2") == 3.0
    est.loaded("m", "gpu2", 5.0)
    assert est.load_seconds("m", "gpu2") == 5.0 and est.load_seconds("other", "gpu2") == 10.0


def test_drain_rate_counts_the_last_minute():
    est = Estimates()
    assert est.drain_rate("m", now=0.0) == 0.0
    for t in range(0, 20, 2):
        est.ended("m", 1.0, now=float(t))
    assert est.drain_rate("m", now=18.0) == 10 / 18
    assert est.drain_rate("m", now=200.0) == 0.0


def test_each_principal_has_its_own_slot_time_for_a_model_and_the_models_stands_in_until_then():
    est = Estimates(default_slot_seconds=5.0)
    assert est.slot_seconds("m", "alice") == 5.0
    est.ended("m", 6.0, now=1.0, principal="job")
    est.ended("m", 0.5, now=2.0, principal="alice")
    assert est.slot_seconds("m", "job") == 6.0 and est.slot_seconds("m", "alice") == 0.5
    assert est.slot_seconds("m", "bob") == est.slot_seconds("m") == 6.0 + 0.2 * (0.5 - 6.0)
    assert est.slot_seconds("other", "alice") == 5.0


def test_the_principal_seen_longest_ago_is_forgotten_past_the_bound(monkeypatch):
    monkeypatch.setattr("ollama_proxy.scheduler.decisions.estimates.PRINCIPALS_KEPT", 2)
    est = Estimates(default_slot_seconds=5.0)
    est.ended("m", 1.0, now=1.0, principal="a")
    est.ended("m", 2.0, now=2.0, principal="b")
    est.ended("m", 3.0, now=3.0, principal="a")  # a seen again: b is now the longest unseen
    est.ended("m", 4.0, now=4.0, principal="c")
    assert est.slot_seconds("m", "a") == 1.4 and est.slot_seconds("m", "c") == 4.0
    assert est.slot_seconds("m", "b") == est.slot_seconds("m")


def test_requests_told_of_together_count_as_if_told_one_by_one():
    together, one_by_one = Estimates(), Estimates()
    for est in (together, one_by_one):
        est.ended("m", 2.0, now=1.0, principal="p")
    together.ended("m", 12.0, now=2.0, principal="p", count=3)
    for _ in range(3):
        one_by_one.ended("m", 12.0, now=2.0, principal="p")
    for principal in (None, "p"):
        assert together.slot_seconds("m", principal) == pytest.approx(one_by_one.slot_seconds("m", principal))
    assert together.slot_seconds("m") == pytest.approx(2 + (1 - 0.8 ** 3) * 10)
    assert together.drain_rate("m", now=2.0) == one_by_one.drain_rate("m", now=2.0) == 4.0


def test_answering_time_is_each_principals_own_for_a_model():
    """A batch job's long answers and people's short ones on one model: neither's average stands for the other."""
    e = Estimates()
    assert e.generation_seconds("m", "job") is None
    for _ in range(20):
        e.generated("m", "job", 6.0)
    e.generated("m", "person", 0.6)
    assert e.generation_seconds("m", "job") == 6.0
    assert e.generation_seconds("m", "person") == 0.6
    assert e.generation_seconds("m", "newcomer") is None
    e.generated("m", "person", -1.0)  # a reading that took longer than the slot's whole time
    assert e.generation_seconds("m", "person") == pytest.approx(0.48)
