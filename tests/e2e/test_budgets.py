"""Budgets through the real server (two workers): spent exactly, refused in each surface's shape once spent."""

from __future__ import annotations

import json
import threading

import requests

from tests.e2e.command import cli, create_key
from tests.e2e.conftest import base_config

BUDGET = 600  # tokens a day for the team
PEOPLE = 4  # clients asking at once, each until refused


def test_a_hard_budget_is_spent_exactly_and_overshot_only_by_what_was_already_running(start_proxy, fake):
    proxy = start_proxy(base_config(fake.url), workers=2)
    assert cli(proxy, "teams", "create", "research").returncode == 0
    secrets = [create_key(proxy, "--name", f"member{n}", "--team", "research") for n in range(PEOPLE)]
    made = cli(proxy, "budgets", "set", "--team", "research", "--period", "day", "--tokens", str(BUDGET))
    assert made.returncode == 0, made.stderr
    served: list[int] = []  # the tokens of each answer, as Ollama counted them
    refused: list[requests.Response] = []
    lock = threading.Lock()

    def ask(secret: str, n: int) -> None:
        for turn in range(100):
            answer = requests.post(proxy.url + "/api/chat", headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                                   json={"model": "llama3.2", "stream": False,
                                         "messages": [{"role": "user", "content": f"question {n}.{turn}"}]})
            with lock:
                if answer.status_code != 200:
                    refused.append(answer)
                    return
                served.append(answer.json()["prompt_eval_count"] + answer.json()["eval_count"])
    asking = [threading.Thread(target=ask, args=(secret, n)) for n, secret in enumerate(secrets)]
    for thread in asking:
        thread.start()
    for thread in asking:
        thread.join(60)

    listed = cli(proxy, "budgets", "list", "--format", "json")
    (budget,) = json.loads(listed.stdout)
    assert budget["spent"] == sum(served)  # every answer charged, once, across both workers
    assert budget["spent"] >= BUDGET and budget["left"] == 0
    assert budget["spent"] - BUDGET < PEOPLE * max(served)  # only answers already running when it ran out
    assert len(fake.calls("/api/chat")) == len(served)  # no refused request reached Ollama
    assert len(refused) == PEOPLE and {r.status_code for r in refused} == {429}
    for refusal in refused:
        assert refusal.json()["error"].startswith(f"team 'research' spent its day's budget of {BUDGET} tokens")
        assert int(refusal.headers["Retry-After"]) >= 1
        assert refusal.headers["X-Budget-Remaining"] == "0; period=day; unit=tokens"
    trail = json.loads(cli(proxy, "audit", "--format", "json").stdout)
    assert trail[-1]["action"] == "budget.set" and trail[-1]["after"]["amount"] == BUDGET
