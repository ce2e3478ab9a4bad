"""The scheduler's order, the one seam a setting picks: fair share (the default) or first come, first served."""

import pytest

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.fairness import BATCH, Share
from ollama_proxy.scheduler.decisions.order import ArrivalOrder, FairOrder, order_of
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec


def _one_slot(order: str) -> Scheduler:
    # No headroom: batch work may take the one slot even while people use the model, so only the order decides.
    scheduler = Scheduler([ServerSpec("gpu1", num_parallel=1)], Bounds(order=order, interactive_headroom=0))
    scheduler.servers["gpu1"].warm("m", Loaded({"num_ctx": 4096}))
    return scheduler


def _ticket(id: str, principal: str, klass: str = "interactive") -> Ticket:
    return Ticket(id, Share(principal, 1.0, klass), "m", ("gpu1",))


def _served(order: str) -> list[str]:
    """Who runs, one after another, when a script's backlog and then a person's question wait for one slot."""
    s = _one_slot(order)
    s.submit(_ticket("script0", "script", BATCH), now=0)  # runs at once
    for i in range(1, 4):
        s.submit(_ticket(f"script{i}", "script", BATCH), now=0)
    s.submit(_ticket("question", "ann"), now=1)
    served, running = ["script0"], "script0"
    for now in range(2, 6):
        (grant,) = s.end(running, now=now)
        served.append(running := grant.ticket)
    return served


@pytest.mark.parametrize("order, served", [
    ("fair", ["script0", "question", "script1", "script2", "script3"]),  # the person goes first
    ("arrival", ["script0", "script1", "script2", "script3", "question"]),  # as Ollama's queue: in turn
])
def test_the_setting_picks_who_of_the_waiting_goes_first(order, served):
    assert _served(order) == served


def test_each_order_is_the_one_its_name_says():
    assert isinstance(order_of(Bounds()), FairOrder) and order_of(Bounds()).ageing == Bounds().batch_ageing
    assert isinstance(order_of(Bounds(order="arrival")), ArrivalOrder)
    assert ArrivalOrder().admit(share := Share("ann"), now=0) is share and ArrivalOrder().turn(share, 99.0) == ()
