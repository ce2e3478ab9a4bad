"""Admitting, refusing and charging principals; the headers they are told."""

from __future__ import annotations

import pytest

from ollama_proxy.access.auth import GENERATE, Principal
from ollama_proxy.access.ratelimit import RateLimiter, Window, duration
from ollama_proxy.config import RateLimitSettings


@pytest.mark.parametrize("seconds, text", [
    (0.0, "0ms"),
    (0.0204, "21ms"),
    (0.999, "999ms"),
    (1.0, "1s"),
    (6.2, "7s"),
    (59.5, "1m0s"),
    (60.0, "1m0s"),
    (125.0, "2m5s"),
])
def test_duration_reads_like_openai(seconds, text):
    assert duration(seconds) == text


def test_window_headers():
    assert Window("tokens", 1000, 250, 12.3).headers() == {
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "250",
        "x-ratelimit-reset-tokens": "13s",
    }


@pytest.fixture
def limiter():
    return RateLimiter(RateLimitSettings("memory://", 1.0))


def test_requests_over_rpm_are_refused_with_retry_after(limiter):
    alice = Principal("alice", GENERATE, rpm=2)
    outcomes = [limiter.admit(alice) for _ in range(3)]
    assert [refusal is None for _, refusal in outcomes] == [True, True, False]
    assert [windows[0].remaining for windows, _ in outcomes] == [1, 0, 0]
    windows, refusal = outcomes[-1]
    assert [w.kind for w in windows] == ["requests"]
    assert refusal.status == 429 and refusal.code == "rate_limit_exceeded"
    assert "2 requests per minute" in refusal.message
    assert 59 <= refusal.retry_after <= 60


def test_tokens_admit_while_under_the_limit_and_are_charged_at_the_end(limiter):
    bob = Principal("bob", GENERATE, tpm=100)
    windows, refusal = limiter.admit(bob)
    assert refusal is None and windows == [Window("tokens", 100, 100, 0.0)]
    limiter.charge("token:bob", 100, 99)
    windows, refusal = limiter.admit(bob)  # 99 < 100: still admitted
    assert refusal is None and windows[0].remaining == 1
    limiter.charge("token:bob", 100, 30)  # the request that was admitted may go over
    windows, refusal = limiter.admit(bob)
    assert windows[0].remaining == 0
    assert refusal is not None and "100 tokens per minute" in refusal.message


def test_a_request_refused_for_tokens_does_not_use_a_request(limiter):
    carol = Principal("carol", GENERATE, rpm=5, tpm=10)
    limiter.charge("token:carol", 10, 10)
    windows, refusal = limiter.admit(carol)
    assert refusal is not None and "tokens" in refusal.message
    assert [(w.kind, w.remaining) for w in windows] == [("requests", 5), ("tokens", 0)]


def test_principals_are_counted_apart(limiter):
    assert limiter.admit(Principal("a", GENERATE, rpm=1))[1] is None
    assert limiter.admit(Principal("b", GENERATE, rpm=1))[1] is None
    assert limiter.admit(Principal("a", GENERATE, rpm=1))[1] is not None


def test_zero_tokens_charge_nothing(limiter):
    limiter.charge("token:dave", 10, 0)
    assert limiter.admit(Principal("dave", GENERATE, tpm=10))[0][0].remaining == 10


def test_a_teams_limits_count_all_its_keys_together_beside_each_keys_own(limiter):
    alice = Principal("alice", GENERATE, rpm=2, team="research", team_rpm=3)
    bob = Principal("bob", GENERATE, team="research", team_rpm=3)
    outcomes = [limiter.admit(p)[1] for p in (alice, bob, alice, bob)]
    assert [refusal is None for refusal in outcomes] == [True, True, True, False]
    assert "team 'research' sent its 3 requests per minute" in outcomes[-1].message
    refused = limiter.admit(alice)[1]  # over its own 2, and its team's 3
    assert refused is not None
    assert limiter.admit(Principal("carol", GENERATE, team="apps", team_rpm=3))[1] is None  # another team


def test_a_keys_tokens_are_charged_to_its_team_which_then_refuses_its_other_keys(limiter):
    alice = Principal("alice", GENERATE, team="research", team_tpm=100)
    bob = Principal("bob", GENERATE, tpm=1000, team="research", team_tpm=100)
    assert limiter.admit(alice)[1] is None
    limiter.charge("team:research", 100, 100, "team ")
    windows, refusal = limiter.admit(bob)
    assert refusal is not None and "team 'research' used its 100 tokens per minute" in refusal.message
    assert limiter.admit(Principal("research", GENERATE, tpm=100))[1] is None  # a key named as the team: apart


def test_the_headers_give_the_tightest_window_of_each_kind():
    from flask import Flask

    from ollama_proxy.access.ratelimit import add_headers
    from ollama_proxy.ledger import RECORD_KEY, RequestRecord

    app = Flask(__name__)
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0)
    record.rate_windows = (Window("requests", 100, 40, 5.0), Window("requests", 10, 3, 9.0), Window("tokens", 50, 7, 1))
    with app.test_request_context(environ_base={RECORD_KEY: record}):
        headers = add_headers(app.response_class()).headers
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("10", "3")
    assert headers["x-ratelimit-remaining-tokens"] == "7"


def test_a_request_its_team_refuses_is_not_counted_in_its_keys_own_window(limiter):
    alice = Principal("alice", GENERATE, rpm=10, team="research", team_rpm=2)
    bob = Principal("bob", GENERATE, team="research", team_rpm=2)
    assert [limiter.admit(p)[1] is None for p in (bob, bob, alice, alice, alice)] == [True, True, False, False, False]
    windows, _ = limiter.admit(alice)
    assert [(w.kind, w.remaining) for w in windows] == [("requests", 0), ("requests", 10)]  # the team's, alice's


def test_a_request_its_key_refuses_is_not_counted_in_its_teams_window(limiter):
    alice = Principal("alice", GENERATE, rpm=1, team="research", team_rpm=5)
    assert [limiter.admit(alice)[1] is None for _ in range(4)] == [True, False, False, False]
    bob = Principal("bob", GENERATE, team="research", team_rpm=5)
    assert [limiter.admit(bob)[1] is None for _ in range(5)] == [True, True, True, True, False]


def test_a_key_or_team_made_again_under_its_name_starts_with_windows_of_its_own(limiter):
    """Counted by id: the windows of a deleted key or team are not the new one's, whatever its name."""
    old = Principal("alice", GENERATE, rpm=2, tpm=100, key_id=1, team="research", team_id=1, team_rpm=2)
    assert [limiter.admit(old)[1] is None for _ in range(3)] == [True, True, False]
    limiter.charge(old.id, 100, 100)
    new_key = Principal("alice", GENERATE, rpm=2, tpm=100, key_id=2)  # the name again, in no team
    assert [limiter.admit(new_key)[1] is None for _ in range(3)] == [True, True, False]
    new_team = Principal("bob", GENERATE, key_id=3, team="research", team_id=2, team_rpm=2)
    refused = [limiter.admit(new_team)[1] for _ in range(3)]
    assert [r is None for r in refused] == [True, True, False]
    assert "team 'research' sent its 2 requests per minute" in refused[-1].message  # named, not counted, by name


def test_a_token_of_the_file_and_a_key_are_counted_apart_whatever_their_names():
    from ollama_proxy.access.ratelimit import limited

    token, key = Principal("alice", GENERATE, rpm=1), Principal("alice", GENERATE, rpm=1, key_id=7)
    assert [h.id for h in limited(token)] == ["token:alice"] and [h.id for h in limited(key)] == ["key:7"]
    assert [(h.id, h.name, h.space) for h in limited(Principal("a", GENERATE, key_id=7, team="lab", team_id=4))] == [
        ("key:7", "a", ""), ("team:4", "lab", "team ")]
