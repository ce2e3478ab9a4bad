from ollama_proxy.scheduler.estimates import Estimates


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
