from ollama_proxy.scheduler.fairness import BATCH, FairShare, Share, class_rank


def test_virtual_time_is_slot_time_over_weight():
    fair = FairShare()
    fair.charge(Share("alice", weight=2), 10.0)
    fair.charge(Share("bob"), 10.0)
    assert (fair.vtime("alice"), fair.vtime("bob")) == (5.0, 10.0)
    fair.charge(Share("bob"), -4.0)  # an overestimate given back
    assert fair.vtime("bob") == 6.0


def test_a_principal_back_from_idle_starts_level_with_the_least_served_active_one():
    fair = FairShare()
    fair.charge(Share("alice"), 500.0)  # heavy, long ago
    fair.charge(Share("gone"), 10.0)
    fair.activate("alice", {"batch": 100.0, "carol": 40.0})
    assert fair.vtime("alice") == 40.0  # no debt carried over idling, and no credit
    assert fair.vtime("gone") == 0.0  # idle principals are forgotten
    fair.activate("dave", {})
    assert fair.vtime("dave") == 0.0


def test_batch_ranks_after_interactive_until_it_has_aged():
    batch = Share("job", klass=BATCH)
    assert class_rank(Share("alice"), waited=0, ageing=30) == 0
    assert class_rank(batch, waited=29.9, ageing=30) == 1
    assert class_rank(batch, waited=30, ageing=30) == 0
