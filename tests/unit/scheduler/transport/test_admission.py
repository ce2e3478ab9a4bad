"""A request's way through the scheduler's client: its ticket, its grant, its record, the metrics told."""

import pytest

from ollama_proxy.ledger import RequestRecord
from ollama_proxy.scheduler.decisions.core import Grant
from ollama_proxy.scheduler.decisions.servers import Placement, Start
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from ollama_proxy.scheduler.transport import admission
from ollama_proxy.scheduler.transport.admission import Admission, Requester


class _GrantingClient:
    """A scheduler client that grants at once, with the reload options the arbiter chose."""

    def __init__(self, placement: Placement, cached: int | None = None) -> None:
        self.placement = placement
        self.cached = cached
        self.tickets = []
        self.ended = []

    def admit(self, ticket, watch=None, deadline=None) -> Grant:
        self.tickets.append((ticket, deadline))
        return Grant(ticket.id, self.placement, 0.25, self.cached)

    def end(self, ticket_id, load_seconds=None, read=None, sent=True):
        self.ended.append((ticket_id, load_seconds) if read is None else (ticket_id, load_seconds, read))
        self.unsent = not sent

    def status(self, timeout: float) -> dict:
        return {"asked within": timeout}


@pytest.fixture(autouse=True)
def gevent_worker(monkeypatch):
    monkeypatch.setattr(admission, "gevent_active", lambda: True)


def test_each_grant_is_told_to_the_metrics_with_the_options_asked_and_the_state_is_asked_of_the_client():
    client = _GrantingClient(Placement("gpu1", Start.WARM, {"num_ctx": 8192}))
    placed = []
    scheduled = Admission(lambda: client)
    scheduled.placed = lambda placement, asked: placed.append((placement, asked))
    admitted = scheduled.admit(None, "m", ["gpu1"], {"num_ctx": 2048}, deadline=123.0)
    assert placed == [(client.placement, {"num_ctx": 2048})]
    assert (admitted.server, admitted.options) == ("gpu1", {"num_ctx": 8192})
    assert client.tickets[0][1] == 123.0  # the dispatcher's deadline, as it gave it
    assert scheduled.status(0.5) == {"asked within": 0.5}


def test_a_grant_notes_its_wait_on_the_record_and_its_release_tells_the_load_time_of_a_load():
    client = _GrantingClient(Placement("gpu1", Start.LOAD, {}))
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0)
    admitted = Admission(lambda: client).admit(Requester(record=record), "Llama3.2", ["gpu1"], {})
    ticket = client.tickets[0][0]
    assert ticket.model == "llama3.2:latest" and record.queued == 0.25 and record.queue_class == "interactive"
    record.load_seconds = 3.5
    admitted.release()
    assert client.ended == [(ticket.id, 3.5)]


@pytest.mark.parametrize("cached", [1000, None])  # None: Ollama 0.33 and before do not say
def test_a_release_tells_the_prompt_ollama_read_and_its_seconds_and_the_ticket_carries_the_prompt(cached):
    from ollama_proxy.scheduler.decisions.prefix import chain_of

    client = _GrantingClient(Placement("gpu1", Start.WARM, {}))
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0)
    chain = chain_of("/api/chat", {"messages": [{"role": "user", "content": "hi"}]})
    admitted = Admission(lambda: client).admit(Requester(record=record), "m", ["gpu1"], {}, prefix=chain)
    ticket = client.tickets[0][0]
    assert ticket.prefix == chain and not ticket.embeds
    record.prompt_tokens, record.cached_tokens, record.prefill_seconds = 1200, cached, 0.3
    admitted.release()
    assert client.ended == [(ticket.id, None, PromptRead(1200, cached, 0.3))]


def test_an_embedding_says_so_on_its_ticket():
    client = _GrantingClient(Placement("gpu1", Start.WARM, {}))
    Admission(lambda: client).admit(None, "m", ["gpu1"], {}, embeds=True)
    assert client.tickets[0][0].embeds


class _Spent(Exception):
    pass


def _refuse() -> None:
    raise _Spent("its budget was spent while it waited")


def test_a_request_that_waited_is_checked_again_at_its_grant_and_refused_gives_its_slot_back():
    client = _GrantingClient(Placement("gpu1", Start.WARM, {}))  # granted after 0.25 s of waiting
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0)
    with pytest.raises(_Spent):
        Admission(lambda: client).admit(Requester(record=record, check_at_grant=_refuse), "m", ["gpu1"], {})
    assert client.ended == [(client.tickets[0][0].id, None)] and client.unsent  # the slot goes to the next
    assert record.queued == 0.25  # its wait is on its record all the same


def test_a_request_granted_at_once_is_not_checked_again():
    class AtOnce(_GrantingClient):
        def admit(self, ticket, watch=None, deadline=None) -> Grant:
            super().admit(ticket, watch, deadline)
            return Grant(ticket.id, self.placement, 0.0)

    client = AtOnce(Placement("gpu1", Start.WARM, {}))
    admitted = Admission(lambda: client).admit(Requester(check_at_grant=_refuse), "m", ["gpu1"], {})
    assert admitted.server == "gpu1" and client.ended == []


def test_a_request_is_scheduled_under_its_keys_and_teams_ids_and_shown_by_its_name():
    from ollama_proxy.access.auth import GENERATE, Principal

    principal = Principal("alice", GENERATE, weight=2.0, trusted_frontend=True, key_id=12, team="lab", team_id=3,
                          team_weight=4.0)
    share = admission.share_of(principal, "ann")
    assert (share.principal, share.team, share.end_user, share.who) == ("key:12", "team:3", "ann", "alice/ann")
    again = admission.share_of(Principal("alice", GENERATE, key_id=13), None)  # made again under the name
    assert again.principal == "key:13" and again.leaf != admission.share_of(Principal("alice", GENERATE, key_id=12),
                                                                            None).leaf
    assert admission.share_of(Principal("alice", GENERATE), None).principal == "token:alice"


@pytest.mark.parametrize("estimate", [3990, 0, None])
def test_the_grants_estimate_of_the_cached_prompt_goes_to_the_dispatcher_and_not_into_ollamas_figure(estimate):
    client = _GrantingClient(Placement("gpu1", Start.WARM, {}), cached=estimate)
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0)
    admitted = Admission(lambda: client).admit(Requester(record=record), "m", ["gpu1"], {})
    assert admitted.cached == estimate
    assert record.cached_tokens is None and record.cached_tokens_estimated is None  # noted once an answer came
