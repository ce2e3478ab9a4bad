"""Budgets held at each request: hard refuses in the surface's shape, soft flags, shadow counts; charged at the end."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from ollama_proxy.app import create_app
from ollama_proxy.config import parse_settings
from ollama_proxy.store import current_store
from ollama_proxy.store.budgets import period_bounds
from tests.actors import TESTER
from tests.migrated import migrated_sqlite

TOKEN = "sk-budget-test-token-000001"
ASKED = {"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def app(tmp_path, fake):
    settings = parse_settings({"logging": {"dir": str(tmp_path)}, "store": {"url": migrated_sqlite(tmp_path / "s.db")},
                               "service": {"base_url": fake.url}, "metrics": {"enabled": True},
                               "budgets": {"cache_seconds": 0, "lease_seconds": 0}}, environ={})
    app = create_app(settings)
    with app.app_context():
        store = current_store()
        store.create_team("research", by=TESTER)
        _, app.secret = store.create_key("alice", by=TESTER, team="research")
        yield app
        store.close()


def _slot_start(period: str) -> datetime:
    return period_bounds(period, datetime.now(timezone.utc), timezone.utc)[0]


def _ask(app, path: str = "/api/chat", body: dict = ASKED):
    return app.test_client().post(path, json=body, headers={"Authorization": f"Bearer {app.secret}"}, buffered=True)


def test_a_spent_hard_budget_refuses_in_the_surfaces_own_shape_until_its_period_resets(app):
    store = current_store()
    store.set_budget("team", "research", period="day", unit="tokens", amount=100, by=TESTER)
    store.charge([(("team", "research", "day", "tokens"), _slot_start("day"), 100)])
    native = _ask(app)
    assert native.status_code == 429 and native.json["error"].startswith("team 'research' spent its day's budget")
    assert 1 <= int(native.headers["Retry-After"]) <= 86_400
    assert native.headers["X-Budget-Remaining"] == "0; period=day; unit=tokens"
    openai = _ask(app, "/v1/chat/completions", {"model": "llama3.2", "messages": ASKED["messages"]})
    assert openai.status_code == 429 and openai.json["error"]["code"] == "budget_exceeded"
    anthropic = _ask(app, "/v1/messages", {"model": "llama3.2", "max_tokens": 5, "messages": ASKED["messages"]})
    assert anthropic.status_code == 429 and anthropic.json["type"] == "error"
    registry = app.extensions["ollama_proxy.observability.metrics"].registry
    assert registry.get_sample_value("ollama_proxy_budget_refusals_total", {"mode": "hard"}) == 3


def test_an_answer_is_charged_its_tokens_and_gpu_seconds_once_it_ends(app, fake):
    store = current_store()
    store.set_budget("key", "alice", period="week", unit="tokens", amount=1_000_000, by=TESTER)
    store.set_budget("key", "alice", period="month", unit="gpu_seconds", amount=3600, by=TESTER)
    answer = _ask(app)
    assert answer.status_code == 200
    tokens = answer.json["prompt_eval_count"] + answer.json["eval_count"]
    week, month = ("key", "alice", "week", "tokens"), ("key", "alice", "month", "gpu_seconds")
    spent = store.spent([(week, _slot_start("week")), (month, _slot_start("month"))])
    assert spent[(week, _slot_start("week"))] == (tokens, 0, 0.0)
    assert spent[(month, _slot_start("month"))][0] == pytest.approx(answer.json["total_duration"] / 1e9)
    left = 1_000_000 - tokens
    assert _ask(app).headers["X-Budget-Remaining"] == f"{left}; period=week; unit=tokens"  # the tightest share left


def test_a_spent_soft_budget_serves_and_says_so_and_a_shadow_one_serves_and_counts(app):
    store = current_store()
    store.set_budget("team", "research", period="day", unit="tokens", amount=10, mode="soft", by=TESTER)
    store.set_budget("key", "alice", period="month", unit="tokens", amount=10, mode="shadow", by=TESTER)
    store.charge([(("team", "research", "day", "tokens"), _slot_start("day"), 10),
                             (("key", "alice", "month", "tokens"), _slot_start("month"), 10)])
    answer = _ask(app)
    assert answer.status_code == 200 and answer.headers["X-Budget-Exceeded"] == "research day"
    shadow = ("key", "alice", "month", "tokens")
    assert store.spent([(shadow, _slot_start("month"))])[(shadow, _slot_start("month"))][1] == 1
    registry = app.extensions["ollama_proxy.observability.metrics"].registry
    for mode in ("soft", "shadow"):
        assert registry.get_sample_value("ollama_proxy_budget_refusals_total", {"mode": mode}) == 1


def test_a_key_with_no_budget_gets_no_budget_headers(app):
    answer = _ask(app)
    assert answer.status_code == 200 and "X-Budget-Remaining" not in answer.headers


def test_budgets_a_worker_never_read_hold_a_managed_keys_request_back_with_a_503(app, caplog):
    store = current_store()
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE budgets"))
    answer = _ask(app)  # a budget of its own may hold it: it does not slip past one the store cannot show
    assert answer.status_code == 503 and "the budgets cannot be checked now" in answer.json["error"]
    assert "budgets: the store cannot be read, and was never read" in caplog.text


def test_budgets_the_store_cannot_read_again_are_those_read_last(app, caplog):
    store = current_store()
    store.set_budget("key", "alice", period="day", unit="tokens", amount=1000, by=TESTER)
    assert _ask(app).headers["X-Budget-Remaining"].endswith("period=day; unit=tokens")
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE budgets"))
    answer = _ask(app)
    assert answer.status_code == 200 and answer.headers["X-Budget-Remaining"].endswith("period=day; unit=tokens")
    assert "budgets: the store cannot be read; holding the 1 budgets read before" in caplog.text


def test_a_token_of_the_file_is_served_though_the_budgets_were_never_read(tmp_path, fake):
    settings = parse_settings({"logging": {"dir": str(tmp_path)}, "store": {"url": migrated_sqlite(tmp_path / "s.db")},
                               "service": {"base_url": fake.url}, "auth": {"generate_tokens": [TOKEN]}}, environ={})
    app = create_app(settings)
    with app.app_context():
        with current_store().engine.begin() as connection:
            connection.execute(text("DROP TABLE budgets"))
        answer = app.test_client().post("/api/chat", json=ASKED, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and "X-Budget-Remaining" not in answer.headers
        current_store().close()


def test_a_request_that_comes_while_another_reads_the_budgets_is_held_to_them_too(app):
    import gevent

    from ollama_proxy.access.auth import GENERATE, Principal
    from ollama_proxy.access.budgets import Budgets
    from ollama_proxy.config import BudgetSettings

    store = current_store()
    store.set_budget("team", "research", period="day", unit="tokens", amount=100, by=TESTER)

    class SlowStore:  # the real store, its budgets read slowly, as over a network
        def list_budgets(self):
            gevent.sleep(0.05)
            return store.list_budgets()

    budgets = Budgets(BudgetSettings(cache_seconds=60), lambda: SlowStore())
    alice = Principal("alice", GENERATE, team="research", team_id=store.get_team("research").id)
    first, second = gevent.spawn(budgets.of, alice), gevent.spawn(budgets.of, alice)
    gevent.joinall([first, second], timeout=5)
    assert [len(g.value) for g in (first, second)] == [1, 1]


def test_a_request_that_waited_is_refused_at_its_grant_once_a_hard_budget_was_spent_meanwhile(app):
    from ollama_proxy.access.budgets import check_at_grant, check_budgets
    from ollama_proxy.errors import RateLimited
    from ollama_proxy.ledger import RECORD_KEY, RequestRecord

    store = current_store()
    store.set_budget("key", "alice", period="day", unit="gpu_seconds", amount=2, by=TESTER)
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0, caller=_alice())
    with app.test_request_context("/api/chat", environ_base={RECORD_KEY: record}):
        check_budgets()  # on arrival: nothing spent
        check = check_at_grant()
    check()  # from another greenlet, outside the request's context: still nothing spent
    store.charge([(("key", "alice", "day", "gpu_seconds"), _slot_start("day"), 2.5)])  # spent while it waited
    with pytest.raises(RateLimited, match="key 'alice' spent its day's budget of 2 gpu-seconds") as refused:
        check()
    assert refused.value.code == "budget_exceeded" and refused.value.retry_after >= 1
    assert record.over_budget == ("hard",) and record.budgeted == ()  # counted as refused, charged nothing
    assert record.budget_remaining == "0; period=day; unit=gpu_seconds"  # for its X-Budget-Remaining


def test_a_request_no_budget_holds_checks_nothing_at_its_grant(app):
    from ollama_proxy.access.budgets import check_at_grant, check_budgets
    from ollama_proxy.ledger import RECORD_KEY, RequestRecord

    record = RequestRecord("r", "POST", "/", "-", 0, caller=_alice())
    with app.test_request_context("/api/chat", environ_base={RECORD_KEY: record}):
        check_budgets()
        assert check_at_grant() is None


def test_a_deleted_keys_principal_still_cached_is_not_held_to_nor_charged_to_a_new_keys_budget(app):
    from ollama_proxy.ledger import RequestRecord

    store = current_store()
    old = _alice()
    store.delete_key("alice", by=TESTER)
    store.create_key("alice", team="research", by=TESTER)
    store.set_budget("key", "alice", period="day", unit="tokens", amount=100, by=TESTER)
    budgets = app.extensions["ollama_proxy.access.budgets"]
    assert budgets.of(old) == [] and [b.holder for b in budgets.of(_alice())] == ["alice"]
    slot = ("key", "alice", "day", "tokens")
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0, principal="alice", key_id=old.key_id, team="research",
                           team_id=old.team_id, prompt_tokens=40, budgeted=((slot, _slot_start("day")),))
    budgets.charge(record, providers=())  # checked against the old key's budget, it ends after the new key came
    assert store.spent([(slot, _slot_start("day"))])[(slot, _slot_start("day"))] == (0.0, 0, 0.0)


def _alice():
    from ollama_proxy.access.auth import principal_of

    store = current_store()
    return principal_of(store.get_key("alice"), store.get_team("research"))
