"""The budgets page through Flask's test client: set, listed with what was spent, a spent soft one flagged, cleared."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ollama_proxy.store.budgets import period_bounds
from tests.actors import TESTER
from tests.unit.blueprints.admin.conftest import csrf_token


def _post(client, path: str, **fields):
    return client.post(path, data={"csrf_token": csrf_token(client, "/admin/budgets"), **fields})


def test_a_budget_is_set_listed_with_its_spending_and_cleared(client, store):
    store.create_team("research", by=TESTER)
    made = _post(client, "/admin/budgets", holder_kind="team", holder="research", period="day", unit="tokens",
                 amount="1000", mode="soft")
    assert made.status_code == 303
    (budget,) = store.list_budgets()
    assert (budget.named, budget.period, budget.unit, budget.amount, budget.mode) == (
        "team 'research'", "day", "tokens", 1000.0, "soft")
    start = period_bounds("day", datetime.now(timezone.utc), timezone.utc)[0]
    store.charge([(budget.slot, start, 1000)])
    page = client.get("/admin/budgets").get_data(as_text=True)
    row = re.search(r'<tr data-budget="team research day tokens">.*?</tr>', page, re.S).group(0)
    assert '<td class="num spent">1000</td>' in row and "spent</span>" in row
    dashboard = client.get("/admin").get_data(as_text=True)
    for shown in (page, re.sub(r"<[^>]+>", "", dashboard)):  # the dashboard links its warning to this page
        assert "The soft day budget of team 'research' is spent" in re.sub(r"\s+", " ", shown)
    cleared = _post(client, "/admin/budgets/clear", holder_kind="team", holder="research", period="day", unit="tokens")
    assert cleared.status_code == 302 and store.list_budgets() == []
    assert [e.actor_kind for e in store.audit_trail() if e.action.startswith("budget")] == ["admin", "admin"]


def test_a_budget_for_no_such_team_is_refused_with_the_reason(client, store):
    answer = _post(client, "/admin/budgets", holder_kind="team", holder="nowhere", period="day", unit="tokens",
                   amount="5", mode="hard")
    assert answer.status_code == 400 and "no team named &#39;nowhere&#39;" in answer.get_data(as_text=True)
    assert store.list_budgets() == []
