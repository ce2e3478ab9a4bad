"""One key may hold only its part of a model's queue: past it a 429, while other keys still get in."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import requests

from tests.actors import TESTER
from tests.e2e.conftest import ALICE, GENERATE, auth, base_config
from tests.e2e.server import wait_for
from tests.fakes.ollama import FakeOllama

QUEUE = 4  # scheduling.max_queued_per_model: the default share lets one key hold half of it
FLOOD = 10  # one running, two waiting (its part), seven refused


@pytest.fixture
def one_slot():
    fake = FakeOllama(num_parallel=1, max_loaded_models=1).start()
    fake.script("llama3.2", chunk_delay=0.25)  # an answer takes about a second
    yield fake
    fake.stop()


def _warm(proxy) -> None:
    """Load the model first: a model's first load waits for the requests that come with it, queued meanwhile."""
    assert _openai_chat(proxy, ALICE, "warm up").status_code == 200


def _openai_chat(proxy, token: str, text: str) -> requests.Response:
    return requests.post(proxy.url + "/v1/chat/completions", headers=auth(token), timeout=60,
                         json={"model": "llama3.2", "messages": [{"role": "user", "content": text}]})


def test_a_key_flooding_a_models_queue_is_refused_past_its_part_and_another_key_gets_in(start_proxy, one_slot):
    config = base_config(one_slot.url, scheduling=True, num_parallel=1, max_loaded_models=1)
    config["scheduling"] = {"max_queued_per_model": QUEUE}
    proxy = start_proxy(config, workers=2)
    _warm(proxy)
    with ThreadPoolExecutor(FLOOD + 1) as pool:
        flood = [pool.submit(_openai_chat, proxy, GENERATE, f"flood {n}") for n in range(FLOOD)]
        # Refused at once; one of the flood runs and two wait, the other key's request beside them.
        assert wait_for(lambda: sum(f.done() and f.result().status_code != 200 for f in flood) == FLOOD - 3, timeout=5)
        other = pool.submit(_openai_chat, proxy, ALICE, "a question of my own")
        answers = [f.result() for f in flood]
        assert other.result().status_code == 200, other.result().text  # queued beside the flood, and served
    refused = [a for a in answers if a.status_code != 200]
    assert len(refused) == FLOOD - 3 and {a.status_code for a in refused} == {429}, [a.text for a in refused]
    for refusal in refused:
        error = refusal.json()["error"]  # OpenAI's shape
        assert error["type"] == "rate_limit_error" and "scheduling.max_queued_share" in error["message"]
        assert int(refusal.headers["Retry-After"]) >= 1
    calls = sorted(one_slot.calls("/api/chat"), key=lambda call: call.at)
    order = [call.json["messages"][-1]["content"] for call in calls][1:]  # after the warm-up
    # The flood's three and the other key's one, which waited beside the flood and went ahead of its backlog.
    assert len(order) == 4 and order.index("a question of my own") < 3, order


def _owned_keys(proxy, owners: dict[str, str]) -> dict[str, str]:
    """Keys in team research, each owned by the person ``owners`` names (key name -> person); their secrets."""
    store = proxy.open_store()
    try:
        store.create_team("research", by=TESTER)
        secrets = {name: store.create_key(name, team="research", owner=person, by=TESTER)[1]
                   for name, person in owners.items()}
        for person in set(owners.values()):  # as their sign-ins do: a key made on My keys stands on its owner
            store.confirm_member(person, name=person, role="member", team="research", refresh_token=None,
                                 now=datetime.now(timezone.utc))
    finally:
        store.close()
    return secrets


@pytest.mark.parametrize("owners, whose", [
    ({"mia-laptop": "mia", "mia-ci": "mia"}, "person 'mia'"),
    ({"mia-laptop": "mia", "leo-laptop": "leo"}, "your team"),
], ids=["one person's two keys", "one team's two people"])
def test_keys_of_one_person_or_one_team_together_hold_only_their_part_of_a_models_queue(start_proxy, one_slot,
                                                                                        owners, whose):
    config = base_config(one_slot.url, scheduling=True, num_parallel=1, max_loaded_models=1)
    config["scheduling"] = {"max_queued_per_model": QUEUE}
    proxy = start_proxy(config, workers=2)
    first, second = _owned_keys(proxy, owners).values()
    _warm(proxy)
    with ThreadPoolExecutor(5) as pool:
        # The first key: one runs, two wait (its part); then the other key, its own part still empty.
        flood = [pool.submit(_openai_chat, proxy, first, f"flood {n}") for n in range(3)]
        assert wait_for(lambda: len(one_slot.calls("/api/chat")) == 2, timeout=5)
        time.sleep(0.5)  # the other two reach the queue
        refused = _openai_chat(proxy, second, "one more of ours")
        other = pool.submit(_openai_chat, proxy, ALICE, "a question of my own")  # another team's: it gets in
        assert [f.result().status_code for f in flood] == [200] * 3
        assert other.result().status_code == 200, other.result().text
    assert refused.status_code == 429, refused.text
    message = refused.json()["error"]["message"]
    assert f"of {whose} for llama3.2" in message and "scheduling.max_queued_share" in message, message
