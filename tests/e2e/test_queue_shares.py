"""One key may hold only its part of a model's queue: past it a 429, while other keys still get in."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

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


def _openai_chat(proxy, token: str, text: str) -> requests.Response:
    return requests.post(proxy.url + "/v1/chat/completions", headers=auth(token), timeout=60,
                         json={"model": "llama3.2", "messages": [{"role": "user", "content": text}]})


def test_a_key_flooding_a_models_queue_is_refused_past_its_part_and_another_key_gets_in(start_proxy, one_slot):
    config = base_config(one_slot.url, scheduling=True, num_parallel=1, max_loaded_models=1)
    config["scheduling"] = {"max_queued_per_model": QUEUE}
    proxy = start_proxy(config, workers=2)
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
    order = [call.json["messages"][-1]["content"] for call in calls]
    # The flood's three and the other key's one, which waited beside the flood and went ahead of its backlog.
    assert len(order) == 4 and order.index("a question of my own") < 3, order
