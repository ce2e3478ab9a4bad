import pytest

from ollama_proxy.scheduler.decisions.fairness import BATCH, FairShare, Share, class_rank


def _top(principal: str) -> tuple:
    return (principal,)


def _served(fair: FairShare, share: Share, seconds: float, now: float) -> None:
    """``share`` comes, is charged ``seconds`` and goes idle at ``now``."""
    fair.enter(share, now)
    fair.charge(share, seconds)
    fair.leave(share, now)


def test_virtual_time_is_slot_time_over_weight_at_each_level():
    fair = FairShare()
    fair.charge(Share("alice", weight=2), 10.0)
    fair.charge(Share("bob"), 10.0)
    assert (fair.vtime(_top("alice")), fair.vtime(_top("bob"))) == (5.0, 10.0)
    fair.charge(Share("bob"), -4.0)  # an overestimate given back
    assert fair.vtime(_top("bob")) == 6.0
    fair.charge(Share("webui", weight=2, end_user="ann"), 10.0)
    assert (fair.vtime(_top("webui")), fair.vtime(("webui", "ann"))) == (5.0, 10.0)  # ann's part is equal in webui


def test_a_principal_never_seen_starts_level_with_the_least_served_active_one():
    fair = FairShare(memory=60)
    fair.enter(Share("batch"), now=0)
    fair.enter(Share("carol"), now=0)
    fair.charge(Share("batch"), 100.0)
    fair.charge(Share("carol"), 40.0)
    fair.enter(Share("alice"), now=0)
    assert fair.vtime(_top("alice")) == 40.0


def test_what_running_requests_hold_is_not_counted_as_served_when_another_comes_in():
    fair = FairShare()
    fair.enter(Share("carol"), now=0)
    fair.start(Share("carol"), 30.0)  # expected to hold its slot 30 s: charged now, not yet had
    fair.enter(Share("alice"), now=1)
    assert fair.vtime(_top("alice")) == 0.0
    fair.finish(Share("carol"), expected=30.0, used=10.0)
    assert fair.vtime(_top("carol")) == 10.0


def test_a_principal_back_soon_keeps_what_it_had_over_the_others_but_no_credit():
    fair = FairShare(memory=60)
    _served(fair, Share("agent"), 50.0, now=0)
    fair.enter(Share("person"), now=1)
    fair.charge(Share("person"), 5.0)
    fair.enter(Share("agent"), now=1)  # back from a second of thinking
    assert fair.vtime(_top("agent")) == 50.0  # behind the person who waited, not level with them
    fair.leave(Share("agent"), now=2)
    fair.charge(Share("person"), 75.0)
    fair.enter(Share("agent"), now=3)
    assert fair.vtime(_top("agent")) == 80.0  # below the least-served active one: idling banked nothing


def test_a_principal_idle_longer_than_the_memory_comes_back_level():
    fair = FairShare(memory=60)
    _served(fair, Share("alice"), 500.0, now=1)  # heavy, long ago
    fair.enter(Share("batch"), now=61)
    fair.charge(Share("batch"), 100.0)
    fair.enter(Share("alice"), now=62)
    assert fair.vtime(_top("alice")) == 100.0


def test_without_a_memory_every_principal_comes_back_level():
    fair = FairShare(memory=0)
    _served(fair, Share("agent"), 50.0, now=0)
    fair.enter(Share("person"), now=1)
    fair.charge(Share("person"), 5.0)
    fair.enter(Share("agent"), now=1)
    assert fair.vtime(_top("agent")) == 5.0


def test_idle_nodes_remembered_are_bounded(monkeypatch):
    monkeypatch.setattr("ollama_proxy.scheduler.decisions.fairness.IDLE_KEPT", 6)
    fair = FairShare(memory=600)
    for n in range(5):
        _served(fair, Share(f"p{n}"), 10.0, now=n)  # two nodes each: the principal and its own requests
    assert [fair.vtime(_top(f"p{n}")) for n in range(5)] == [0.0, 0.0, 10.0, 10.0, 10.0]  # the longest idle first


def test_a_new_end_user_starts_level_with_the_other_end_users_of_its_key_and_never_ahead_of_its_key():
    fair = FairShare(memory=60)
    fair.enter(Share("script"), now=0)
    fair.charge(Share("script"), 10.0)
    ann = Share("webui", end_user="ann")
    fair.enter(ann, now=0)
    fair.charge(ann, 30.0)
    newcomer = Share("webui", end_user=f"user{1}")
    fair.enter(newcomer, now=1)
    assert fair.vtime(("webui", "user1")) == 30.0  # level with ann, its sibling
    assert fair.rank(newcomer) == (40.0, 30.0) > fair.rank(Share("script"))  # its key had more than script


def test_an_end_user_flood_gets_its_key_one_share():
    """A front end that names a fresh end user with each request gets what one principal gets, not one share each."""
    fair = FairShare(memory=60)
    script, order = Share("script"), []
    fair.enter(script, now=0)
    waiting = [Share("webui", end_user=f"fresh{n}") for n in range(50)]
    for share in waiting:
        fair.enter(share, now=0)
    for _ in range(20):  # each turn: the least-ranked goes, and holds its slot one second
        turn = min([script, *waiting], key=fair.rank)
        fair.charge(turn, 1.0)
        order.append(turn.principal)
        if turn is not script:
            waiting.remove(turn)
    assert order.count("script") == 10, order


def test_end_users_kept_per_key_are_bounded_and_the_oldest_idle_is_forgotten_first():
    fair = FairShare(memory=600, members_kept=3)
    for n in range(3):
        _served(fair, fair.admit(Share("webui", end_user=f"u{n}"), now=n), 5.0, now=n)
    assert fair.admit(Share("webui", end_user="u3"), now=4).end_user == "u3"
    assert fair.vtime(("webui", "u0")) == 0.0 and fair.vtime(("webui", "u1")) == 5.0  # u0 made room


def test_while_all_kept_end_users_are_active_a_new_one_is_scheduled_as_its_keys_own_requests():
    fair = FairShare(memory=600, members_kept=2)
    for name in ("ann", "bob"):
        fair.enter(fair.admit(Share("webui", end_user=name), now=0), now=0)
    folded = fair.admit(Share("webui", end_user="eve"), now=1)
    assert folded == Share("webui") and folded.leaf == ("webui", None)
    assert fair.admit(Share("webui", end_user="bob"), now=1).end_user == "bob"  # one kept stays itself


@pytest.mark.parametrize("share, expected", [(Share("alice"), "alice"), (Share("webui", end_user="ann"), "webui/ann")])
def test_a_share_is_shown_as_its_principal_and_end_user(share, expected):
    assert share.who == expected


def test_batch_ranks_after_interactive_until_it_has_aged():
    batch = Share("job", klass=BATCH)
    assert class_rank(Share("alice"), waited=0, ageing=30) == 0
    assert class_rank(batch, waited=29.9, ageing=30) == 1
    assert class_rank(batch, waited=30, ageing=30) == 0


def test_a_team_is_one_more_level_charged_over_its_weight_and_a_team_node_is_never_a_principals():
    fair = FairShare(memory=0)
    share = Share("alice", weight=2, team="apps", team_weight=4)
    assert [node for node, _ in share.path] == [(None, "apps"), ("alice",), ("alice", None)]
    fair.charge(share, 8.0)
    assert (fair.vtime((None, "apps")), fair.vtime(_top("alice")), fair.vtime(("alice", None))) == (2.0, 4.0, 8.0)
    _served(fair, Share("None", team="x"), 1.0, now=0)  # a key named "None": its node is ("None",), not a team's
    fair.enter(share, now=1)
    fair.leave(share, now=2)  # the team goes idle, and with memory 0 is forgotten at once
    fair.enter(Share("bob"), now=3)
    assert fair.vtime((None, "apps")) == 0.0 and fair.counts() == {("bob",): 1, ("bob", None): 1}
