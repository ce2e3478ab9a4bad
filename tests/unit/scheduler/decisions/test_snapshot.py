"""The scheduler's state as plain data: what the arbiter answers a status question with."""

import json

from ollama_proxy.scheduler.decisions.core import Scheduler, Ticket
from ollama_proxy.scheduler.decisions.fairness import BATCH, Share
from ollama_proxy.scheduler.decisions.prefix import chain_of, prompt_tokens
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec
from ollama_proxy.scheduler.decisions.tickets import PromptRead


def _ticket(ticket_id: str, principal: str, klass: str = "interactive", model: str = "m", **kw) -> Ticket:
    return Ticket(ticket_id, Share(principal, kw.pop("weight", 1.0), klass), model, kw.pop("candidates", ("gpu1",)),
                  **kw)


def _busy_scheduler() -> Scheduler:
    """gpu1 runs m (num_ctx 8192) for alice and bob; carol (batch) and dave wait for it; gpu2 runs nothing."""
    s = Scheduler([ServerSpec("gpu1", num_parallel=2, max_loaded_models=1), ServerSpec("gpu2", max_concurrent=3)])
    s.servers["gpu1"].warm("m", Loaded({"num_ctx": 8192}))
    s.submit(_ticket("a", "alice", asked={"num_ctx": 2048}), now=10)
    s.submit(_ticket("b", "bob"), now=11)
    s.submit(_ticket("c", "carol", BATCH, candidates=("gpu1", "elsewhere")), now=12)
    s.submit(_ticket("d", "dave", weight=2.0, asked={"num_ctx": 4096}), now=14)
    return s


def test_each_server_shows_its_slots_and_each_loaded_model_its_options_and_busy_slots():
    servers = _busy_scheduler().status(now=20)["servers"]
    assert servers == [
        {"name": "gpu1", "slots": 2, "busy": 2, "num_parallel": 2, "max_loaded_models": 1,
         "models": [{"model": "m", "options": {"num_ctx": 8192}, "busy": 2, "slots": 2, "lent": 0, "reserved": False,
                     "prompts": []}]},  # no prompt told: no cache to show
        {"name": "gpu2", "slots": 3, "busy": 0, "num_parallel": 1, "max_loaded_models": 3, "models": []},
    ]


def test_who_runs_where_since_when_with_the_options_sent():
    running = _busy_scheduler().status(now=20)["running"]
    assert running == [
        {"principal": "alice", "class": "interactive", "weight": 1.0, "model": "m", "server": "gpu1", "start": "warm",
         "options": {"num_ctx": 8192}, "running": 10},
        {"principal": "bob", "class": "interactive", "weight": 1.0, "model": "m", "server": "gpu1", "start": "warm",
         "options": {"num_ctx": 8192}, "running": 9},
    ]


def test_who_waits_in_the_order_they_go_with_the_servers_they_may_run_on():
    waiting = _busy_scheduler().status(now=20)["waiting"]
    assert waiting == [
        {"principal": "dave", "class": "interactive", "weight": 2.0, "model": "m", "asked": {"num_ctx": 4096},
         "waited": 6, "servers": ["gpu1"]},
        # batch: behind dave, who came later; a server the scheduler does not know is left out
        {"principal": "carol", "class": "batch", "weight": 1.0, "model": "m", "asked": {}, "waited": 8,
         "servers": ["gpu1"]},
    ]


def test_a_runner_draining_for_a_larger_context_is_marked_reserved():
    s = Scheduler([ServerSpec("gpu1", num_parallel=2)])
    s.servers["gpu1"].warm("m", Loaded({"num_ctx": 2048}))
    s.submit(_ticket("small", "alice"), now=0)
    s.submit(_ticket("big", "bob", asked={"num_ctx": 8192}), now=1)
    (runner,) = s.status(now=2)["servers"][0]["models"]
    assert runner["reserved"] and runner["busy"] == 1


def test_the_state_crosses_the_wire_as_json_unchanged():
    state = _busy_scheduler().status(now=20)
    assert json.loads(json.dumps(state)) == state


def test_an_idle_scheduler_has_nobody_running_or_waiting():
    state = Scheduler([ServerSpec("gpu1")]).status(now=0)
    assert (state["running"], state["waiting"]) == ([], [])
    assert state["servers"][0]["slots"] == 3  # num_parallel 1 x max_loaded_models 3, as Ollama's defaults


def test_each_prompt_a_server_holds_shows_whose_it_is_where_and_the_hits_its_answers_confirmed():
    s = Scheduler([ServerSpec("gpu1", num_parallel=1)])
    s.servers["gpu1"].warm("m", Loaded({}))
    turns = {name: chain_of("/api/chat", {"messages": [{"role": "user", "content": name + "x" * 8000}]})
             for name in ("ann", "bob")}
    s.submit(_ticket("a1", "webui/ann", prefix=turns["ann"]), now=0)

    def prompts(now: float) -> list[dict]:
        return s.status(now)["servers"][0]["models"][0]["prompts"]
    tokens = prompt_tokens(turns["ann"])
    assert prompts(1) == [{"where": "slot 0", "owner": "webui/ann", "tokens": tokens, "in_use": True}]
    s.end("a1", now=5, read=PromptRead(tokens, 0, 1.0))
    s.submit(_ticket("b1", "bob", prefix=turns["bob"]), now=6)  # ann's saved to RAM as bob's takes the slot
    assert prompts(7) == [{"where": "slot 0", "owner": "bob", "tokens": prompt_tokens(turns["bob"]), "in_use": True},
                          {"where": "RAM", "owner": "webui/ann", "tokens": tokens, "in_use": False}]
    assert s.status(7)["prompt_cache"] == [{"server": "gpu1", "model": "m", "predicted": 0, "confirmed": 0,
                                            "surprises": 0, "predicted_tokens": 0, "confirmed_tokens": 0,
                                            "reliability": 1.0}]


def test_who_runs_and_whose_prompt_is_cached_are_shown_by_name_not_by_id():
    s = Scheduler([ServerSpec("gpu1", num_parallel=1)])
    s.servers["gpu1"].warm("m", Loaded({}))
    chain = chain_of("/api/chat", {"messages": [{"role": "user", "content": "x" * 8000}]})
    share = Share("key:12", name="alice", end_user="ann")
    s.submit(Ticket("a1", share, "m", ("gpu1",), prefix=chain), now=0)
    state = s.status(1)
    assert state["running"][0]["principal"] == "alice/ann"
    assert state["servers"][0]["models"][0]["prompts"][0]["owner"] == "alice/ann"
