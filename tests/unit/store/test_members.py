"""What the identity provider last said of each person: confirmed, lost (in the trail), re-checks claimed once."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from tests.actors import TESTER

T0 = datetime(2026, 11, 22, 20, 0, tzinfo=timezone.utc)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def confirm(store, subject: str = "sub-mia", team: str | None = "red", token: str | None = "sealed-1",
            now: datetime = T0) -> None:
    store.confirm_member(subject, name="mia", role="member", team=team, refresh_token=token, now=now)


def test_a_sign_in_confirms_a_person_and_a_later_one_confirms_them_again(store):
    confirm(store)
    member = store.get_member("sub-mia")
    assert (member.name, member.role, member.team, member.confirmed_at, member.renewable) == (
        "mia", "member", "red", T0, True)
    confirm(store, team="blue", token=None, now=later(60))
    member = store.get_member("sub-mia")
    assert (member.team, member.confirmed_at, member.checked_at, member.renewable) == ("blue", later(60), later(60),
                                                                                        False)
    assert [m.subject for m in store.list_members()] == ["sub-mia"]
    assert store.get_member("sub-nobody") is None


def test_a_lost_person_keeps_no_token_is_in_the_trail_once_and_a_sign_in_brings_them_back(store):
    confirm(store)
    assert store.lose_member("sub-mia", "refresh token refused: invalid_grant", by=TESTER, now=later(5))
    assert not store.lose_member("sub-mia", "again", by=TESTER, now=later(6))  # lost already: nothing changes
    assert not store.lose_member("sub-nobody", "never seen", by=TESTER, now=later(6))
    member = store.get_member("sub-mia")
    assert (member.lost_at, member.note, member.renewable) == (later(5), "refresh token refused: invalid_grant", False)
    entries = [(e.action, e.target, e.before, e.after) for e in store.audit_trail()]
    assert entries == [("member.lost", "mia", {"role": "member", "team": "red"},
                        {"subject": "sub-mia", "reason": "refresh token refused: invalid_grant"})]
    confirm(store, now=later(10))
    member = store.get_member("sub-mia")
    assert (member.lost_at, member.note, member.confirmed_at) == (None, None, later(10))


def test_a_recheck_is_claimed_by_one_caller_until_it_ends_or_its_claim_runs_out(store):
    confirm(store)
    assert store.members_due(before=later(1), now=later(1)) == ["sub-mia"]
    assert store.claim_member_check("sub-mia", now=later(1), until=later(31)) == "sealed-1"
    assert store.claim_member_check("sub-mia", now=later(2), until=later(32)) is None  # held
    assert store.members_due(before=later(2), now=later(2)) == []
    assert store.claim_member_check("sub-mia", now=later(31), until=later(61)) == "sealed-1"  # ran out
    store.note_member_check("sub-mia", "the identity provider could not be reached", now=later(40))
    member = store.get_member("sub-mia")
    assert (member.checked_at, member.confirmed_at, member.note) == (
        later(40), T0, "the identity provider could not be reached")
    assert store.members_due(before=later(40), now=later(41)) == []  # just asked about
    assert store.claim_member_check("sub-mia", now=later(41), until=later(71)) == "sealed-1"


def test_nobody_without_a_token_or_lost_is_due_or_claimed(store):
    confirm(store, "sub-ann", token=None)
    confirm(store, "sub-bob")
    store.lose_member("sub-bob", "gone", by=TESTER, now=T0)
    confirm(store, "sub-cid")
    store.note_member_check("sub-cid", "the kept token cannot be opened", now=T0, forget_token=True)
    assert store.members_due(before=later(60), now=later(60)) == []
    assert [store.claim_member_check(s, now=later(60), until=later(90)) for s in ("sub-ann", "sub-bob", "sub-cid")] \
        == [None, None, None]


def test_many_callers_at_once_claim_a_recheck_once(store):
    confirm(store)
    claimed, start = [], threading.Barrier(8)

    def claim():
        start.wait()
        claimed.append(store.claim_member_check("sub-mia", now=later(1), until=later(31)))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(claimed, key=str) == [None] * 7 + ["sealed-1"]


def test_two_first_sign_ins_of_one_person_at_once_make_one_row(store):
    start = threading.Barrier(6)

    def sign_in(i: int):
        start.wait()
        confirm(store, now=later(i))

    threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [m.subject for m in store.list_members()] == ["sub-mia"]
