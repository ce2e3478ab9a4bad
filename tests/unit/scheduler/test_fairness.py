from ollama_proxy.scheduler.fairness import BATCH, FairShare, Share, class_rank


def test_virtual_time_is_slot_time_over_weight():
    fair = FairShare()
    fair.charge(Share("alice", weight=2), 10.0)
    fair.charge(Share("bob"), 10.0)
    assert (fair.vtime("alice"), fair.vtime("bob")) == (5.0, 10.0)
    fair.charge(Share("bob"), -4.0)  # an overestimate given back
    assert fair.vtime("bob") == 6.0


def test_a_principal_never_seen_starts_level_with_the_least_served_active_one():
    fair = FairShare(memory=60)
    fair.activate("alice", {"batch": 100.0, "carol": 40.0}, now=0)
    assert fair.vtime("alice") == 40.0
    fair.activate("dave", {}, now=0)
    assert fair.vtime("dave") == 0.0


def test_a_principal_back_soon_keeps_what_it_had_over_the_others_but_no_credit():
    fair = FairShare(memory=60)
    fair.activate("agent", {}, now=0)
    fair.charge(Share("agent"), 50.0)
    fair.idle("agent", now=10)
    fair.activate("agent", {"person": 5.0}, now=11)  # back from a second of thinking
    assert fair.vtime("agent") == 50.0  # behind the person who waited, not level with them
    fair.idle("agent", now=12)
    fair.activate("agent", {"person": 80.0}, now=13)
    assert fair.vtime("agent") == 80.0  # below the least-served active one: idling banked nothing


def test_a_principal_idle_longer_than_the_memory_comes_back_level():
    fair = FairShare(memory=60)
    fair.activate("alice", {}, now=0)
    fair.charge(Share("alice"), 500.0)  # heavy, long ago
    fair.idle("alice", now=1)
    fair.activate("carol", {}, now=30)
    fair.idle("carol", now=31)
    fair.activate("bob", {"batch": 100.0}, now=61)  # alice is forgotten by now; carol not yet
    assert fair.vtime("alice") == 0.0 and fair.vtime("carol") == 0.0
    fair.activate("alice", {"batch": 100.0, "bob": 100.0}, now=62)
    assert fair.vtime("alice") == 100.0


def test_without_a_memory_every_principal_comes_back_level():
    fair = FairShare(memory=0)
    fair.activate("agent", {}, now=0)
    fair.charge(Share("agent"), 50.0)
    fair.idle("agent", now=1)
    fair.activate("agent", {"person": 5.0}, now=1)
    assert fair.vtime("agent") == 5.0


def test_idle_principals_remembered_are_bounded(monkeypatch):
    monkeypatch.setattr("ollama_proxy.scheduler.fairness.IDLE_KEPT", 3)
    fair = FairShare(memory=600)
    for n in range(5):
        fair.activate(f"p{n}", {}, now=n)
        fair.charge(Share(f"p{n}"), 10.0)
        fair.idle(f"p{n}", now=n)
    assert [fair.vtime(f"p{n}") for n in range(5)] == [0.0, 0.0, 10.0, 10.0, 10.0]  # the longest idle went first


def test_batch_ranks_after_interactive_until_it_has_aged():
    batch = Share("job", klass=BATCH)
    assert class_rank(Share("alice"), waited=0, ageing=30) == 0
    assert class_rank(batch, waited=29.9, ageing=30) == 1
    assert class_rank(batch, waited=30, ageing=30) == 0
