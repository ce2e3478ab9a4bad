"""``ollama-proxy budgets``: set (replacing), list with what was spent and left, clear; each change audited."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from ollama_proxy.cli import main
from ollama_proxy.config import load_settings
from ollama_proxy.store import open_store
from ollama_proxy.store.budgets import period_bounds


def run(config: str, *args: str) -> int:
    return main([*args, "--config", config])


def test_a_teams_budget_is_set_listed_with_its_spending_and_cleared(store_config, capsys):
    assert run(store_config, "teams", "create", "research") == 0
    assert run(store_config, "budgets", "set", "--team", "research", "--period", "month", "--gpu-seconds",
               "720000") == 0
    assert run(store_config, "budgets", "set", "--team", "research", "--period", "month", "--gpu-seconds", "360000",
               "--mode", "shadow") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["team 'research': 720000 gpu-seconds a month, hard",
                       "team 'research': 360000 gpu-seconds a month, shadow"]
    store = open_store(load_settings(store_config).store)
    start = period_bounds("month", datetime.now(timezone.utc), timezone.utc)[0]
    store.charge([(("team", "research", "month", "gpu_seconds"), start, 1234.5)])
    store.note_refusal(("team", "research", "month", "gpu_seconds"), start)
    store.close()

    assert run(store_config, "budgets", "list", "--format", "json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert {k: listed[k] for k in ("holder_kind", "holder", "period", "unit", "amount", "mode", "spent", "left",
                                   "refusals")} == {
        "holder_kind": "team", "holder": "research", "period": "month", "unit": "gpu_seconds", "amount": 360000.0,
        "mode": "shadow", "spent": 1234.5, "left": 358765.5, "refusals": 1}
    assert run(store_config, "budgets", "list") == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["holder", "period", "budget", "mode"] and "1234.5" in row and row.endswith("1")

    assert run(store_config, "budgets", "clear", "--team", "research", "--period", "day") == 1
    assert "has no such budget" in capsys.readouterr().err
    assert run(store_config, "budgets", "clear", "--team", "research") == 0
    assert capsys.readouterr().out.strip() == "team 'research': 1 budget cleared"
    assert run(store_config, "audit", "--format", "json") == 0
    actions = [e["action"] for e in json.loads(capsys.readouterr().out)]
    assert actions == ["team.create", "budget.set", "budget.set", "budget.clear"]


@pytest.mark.parametrize("args", [
    ["--team", "t", "--period", "day"],  # no amount
    ["--team", "t", "--key", "k", "--period", "day", "--tokens", "5"],  # two holders
    ["--team", "t", "--period", "year", "--tokens", "5"],
    ["--team", "t", "--period", "day", "--tokens", "-5"],
    ["--team", "t", "--period", "day", "--tokens", "5", "--gpu-seconds", "5"],
])
def test_nonsense_is_refused_on_the_command_line(store_config, args):
    with pytest.raises(SystemExit):
        run(store_config, "budgets", "set", *args)


def test_a_budget_for_no_such_holder_is_an_error(store_config, capsys):
    assert run(store_config, "budgets", "set", "--key", "nobody", "--period", "day", "--tokens", "5") == 1
    assert "no key named 'nobody'" in capsys.readouterr().err
