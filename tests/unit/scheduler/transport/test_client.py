"""A worker's scheduler client on its own: a fake arbiter at the other end of its lines, a clock of the test's."""

import time

import gevent
import pytest
from gevent.queue import Queue

from ollama_proxy.errors import Overloaded, RateLimited
from ollama_proxy.scheduler.decisions import prefix
from ollama_proxy.scheduler.decisions.fairness import BATCH, INTERACTIVE, Share
from ollama_proxy.scheduler.decisions.servers import Placement, ServerSpec, Start
from ollama_proxy.scheduler.decisions.tickets import Grant, Loan, PromptRead, Ticket
from ollama_proxy.scheduler.transport import wire
from ollama_proxy.scheduler.transport.client import REPORT_AFTER, ClientLeft, SchedulerClient
from tests.fakes.clock import ManualClock

SPECS = [ServerSpec("gpu1", num_parallel=4), ServerSpec("gpu2", num_parallel=4)]
OPTIONS = {"num_ctx": 4096}  # what the model runs with, wherever it runs here
_END = object()


def _until(condition, timeout: float = 1.0) -> None:
    with gevent.Timeout(timeout, AssertionError("what the test waited for never happened")):
        while not condition():
            gevent.sleep(0.001)


class Line:
    """One line from the client to the fake arbiter: what the client sent on it, and the test's answers."""

    def __init__(self, arbiter: "Arbiter", receive) -> None:
        self._arbiter = arbiter
        self.receive = receive
        self.sent: list[dict] = []
        self.closed = self.broken = self.reading = False
        self._inbox = Queue()

    def send(self, message: dict) -> None:
        if self.closed:
            raise OSError("the line is closed")
        self.sent.append(message)
        for answer in self._arbiter.on_send(message) or ():
            self.receive(answer)  # within the call, as the arbiter's own worker's line answers

    def messages(self):
        self._arbiter.greenlets.append(gevent.getcurrent())
        self.reading = True
        while (message := self._inbox.get()) is not _END:
            yield message
        if self.broken:
            raise ConnectionResetError("the arbiter's worker died")

    def close(self) -> None:
        self.closed = True
        self._inbox.put(_END)

    def answer(self, message: dict) -> None:
        """Send ``message`` to the client as a socket does; return once its reader has taken it."""
        self._inbox.put(message)
        _until(self._inbox.empty)

    def drop(self) -> None:
        """The arbiter's worker dies: the line breaks under the client."""
        self.broken = True
        self.close()

    def ops(self) -> list[str]:
        return [message["op"] for message in self.sent]


class Arbiter:
    """Where the client's lines go: each line opened is to the next arbiter; none answers while ``down``."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.questions: list[Line] = []
        self.greenlets: list[gevent.Greenlet] = []  # the client's readers and connectors, ended after the test
        self.down = False
        self.refusals = 0
        self.while_down = lambda: None  # what happens at each refused try (time passes)
        self.on_send = lambda message: None  # message -> the answers the arbiter gives at once, if any

    def connect(self, receive) -> Line:
        self.greenlets.append(gevent.getcurrent())
        if self.down:
            self.refusals += 1
            self.while_down()
            raise ConnectionRefusedError("no arbiter listens")
        self.lines.append(Line(self, receive))
        return self.lines[-1]

    def ask(self, receive) -> Line:
        self.questions.append(Line(self, receive))
        return self.questions[-1]

    @property
    def line(self) -> Line:
        return self.lines[-1]

    def grants_at_once(self) -> None:
        self.on_send = lambda message: [_grant(message["id"])] if message["op"] == "submit" else None


@pytest.fixture
def arbiter():
    made = Arbiter()
    yield made
    gevent.killall([greenlet for greenlet in made.greenlets if greenlet is not gevent.getcurrent()])


@pytest.fixture
def clock():
    return ManualClock(100.0)


def _client(arbiter: Arbiter, clock: ManualClock, **options) -> SchedulerClient:
    """A client whose line to ``arbiter`` is open, and has said all it holds (nothing yet)."""
    options.setdefault("max_wait", 600.0)
    client = SchedulerClient(arbiter.connect, specs=SPECS, clock=clock, **options)
    client.join()
    _until(lambda: arbiter.lines and arbiter.line.reading)
    return client


def _ticket(ticket_id: str, principal: str = "alice", klass: str = INTERACTIVE, model: str = "m",
            candidates=("gpu1",), asked: dict | None = None, prompt: int = 0) -> Ticket:
    chain = (prefix.Link(0, "opening", prompt),) if prompt else ()
    return Ticket(ticket_id, Share(principal, klass=klass), model, tuple(candidates), asked or {}, prefix=chain)


def _placement(server: str = "gpu1") -> Placement:
    return Placement(server, Start.WARM, OPTIONS)


def _grant(ticket_id: str, server: str = "gpu1", waited: float = 0.0, **extra) -> dict:
    return {**wire.grant(Grant(ticket_id, _placement(server), waited)), **extra}


def _lend(loan_id: str = "l1", server: str = "gpu1", slots: int = 2, classes=(INTERACTIVE,),
          prompt_below: int = 1024) -> dict:
    return wire.lend(Loan(loan_id, "", server, "m", OPTIONS, slots, classes=classes, prompt_below=prompt_below))


def test_a_submitted_ticket_gets_the_grant_its_arbiter_answers_and_its_submit_names_its_servers(arbiter, clock):
    client = _client(arbiter, clock)
    ticket = _ticket("t1")
    asking = gevent.spawn(client.admit, ticket)
    _until(lambda: "submit" in arbiter.line.ops())
    assert arbiter.line.sent == [wire.sync([], []), wire.submit(ticket, [SPECS[0]])]
    arbiter.line.answer(_grant("t1", waited=0.5))
    assert asking.get(timeout=1) == Grant("t1", _placement(), 0.5)


def test_a_granted_slot_given_back_is_told_to_the_arbiter_once(arbiter, clock):
    client = _client(arbiter, clock)
    arbiter.grants_at_once()
    client.admit(_ticket("t1"))
    client.end("t1", load_seconds=2.5, read=PromptRead(1200, 1000, 0.25))
    client.end("t1")
    assert arbiter.line.sent[2:] == [{"op": "end", "id": "t1", "load_seconds": 2.5, "prompt": [1200, 1000, 0.25]}]


def test_a_granted_slot_never_sent_is_cancelled_not_ended(arbiter, clock):
    client = _client(arbiter, clock)
    arbiter.grants_at_once()
    client.admit(_ticket("t1"))
    client.end("t1", sent=False)  # refused at its grant: a hard budget was spent while it waited
    assert arbiter.line.sent[2:] == [{"op": "cancel", "id": "t1"}]


def test_a_refusal_is_raised_as_the_arbiters_own_error_and_nothing_is_cancelled(arbiter, clock):
    client = _client(arbiter, clock)
    arbiter.on_send = lambda message: [wire.refused(message["id"], RateLimited("too many", retry_after=7))]
    with pytest.raises(RateLimited) as refused:
        client.admit(_ticket("t1"))
    assert refused.value.retry_after == 7 and arbiter.line.ops() == ["sync", "submit"]


def test_a_ticket_the_arbiter_lets_expire_raises_overloaded_with_the_arbiters_retry_after_and_is_withdrawn(
        arbiter, clock):
    client = _client(arbiter, clock)
    arbiter.on_send = lambda message: [{"op": "expired", "id": message["id"], "retry_after": 3.0}]
    with pytest.raises(Overloaded) as late:
        client.admit(_ticket("t1"))
    assert "scheduling.max_wait" in late.value.message and late.value.retry_after == 3.0
    assert arbiter.line.sent[-1] == {"op": "cancel", "id": "t1"}


@pytest.mark.parametrize("within, passing", [(None, 602.0), (30.0, 31.0)], ids=["max_wait", "its deadline"])
def test_a_ticket_whose_grant_never_comes_gives_up_once_the_clock_passes_its_deadline(arbiter, clock, within,
                                                                                         passing):
    clock.now = 1e12  # far past any real monotonic time: a deadline read from that one would be ages away
    client = _client(arbiter, clock, max_wait=600.0)
    arbiter.on_send = lambda message: clock.advance(passing) if message["op"] == "submit" else None
    started = time.monotonic()
    with gevent.Timeout(2), pytest.raises(Overloaded) as late:
        client.admit(_ticket("t1"), deadline=None if within is None else clock.now + within)
    assert time.monotonic() - started < 1.0
    assert late.value.retry_after == 600.0  # the client's own estimate: the arbiter never answered
    assert arbiter.line.sent[-1] == {"op": "cancel", "id": "t1"}


def test_the_tickets_held_and_waiting_when_the_line_drops_are_told_to_the_next_arbiter_on_its_first_message(
        arbiter, clock):
    client = _client(arbiter, clock)
    arbiter.grants_at_once()
    running = _ticket("t1")
    client.admit(running)
    arbiter.on_send = lambda message: None  # t2 waits
    waiting_ticket = _ticket("t2", "bob")
    waiting = gevent.spawn(client.admit, waiting_ticket)
    first = arbiter.line
    _until(lambda: first.ops() == ["sync", "submit", "submit"])
    first.drop()
    _until(lambda: len(arbiter.lines) == 2 and arbiter.line.reading)
    second = arbiter.line
    assert second.sent == [wire.sync([wire.running(running, _placement(), [SPECS[0]])],
                                     [wire.submit(waiting_ticket, [SPECS[0]])])]
    second.answer(_grant("t2", "gpu2"))
    assert waiting.get(timeout=1).placement.server == "gpu2"


def test_a_slot_given_back_while_no_arbiter_answers_is_left_out_of_what_the_next_one_hears(arbiter, clock):
    client = _client(arbiter, clock)
    arbiter.grants_at_once()
    client.admit(_ticket("t1"))
    client.admit(_ticket("t2"))
    arbiter.down = True
    arbiter.line.drop()
    _until(lambda: arbiter.refusals)
    client.end("t1")
    arbiter.down = False
    _until(lambda: len(arbiter.lines) == 2 and arbiter.line.reading)
    assert arbiter.line.sent == [wire.sync([wire.running(_ticket("t2"), _placement(), [SPECS[0]])], [])]


def test_a_request_that_fits_a_loan_starts_on_it_at_once_and_the_arbiter_hears_after_report_after(arbiter, clock):
    client = _client(arbiter, clock, borrow=True)
    line = arbiter.line
    line.answer(_lend("l1"))
    ticket = _ticket("t1")
    granted = client.admit(ticket)
    assert granted == Grant("t1", _placement(), 0.0)
    assert line.ops() == ["join", "sync"]  # no round trip
    started = time.monotonic()
    _until(lambda: "start" in line.ops())
    assert time.monotonic() - started >= REPORT_AFTER / 2
    assert line.sent[2:] == [wire.start(ticket, "l1", granted.placement, [SPECS[0]])]
    client.end("t1")
    assert line.sent[-1] == {"op": "end", "id": "t1", "load_seconds": None}


def test_requests_that_end_on_a_loan_before_report_after_are_told_in_one_ran_report_per_principal(arbiter, clock):
    client = _client(arbiter, clock, borrow=True)
    line = arbiter.line
    line.answer(_lend("l1"))
    for ticket_id, principal, seconds in [("a1", "alice", 0.25), ("a2", "alice", 0.5), ("b1", "bob", 1.0)]:
        client.admit(_ticket(ticket_id, principal))
        clock.advance(seconds)
        client.end(ticket_id)
    assert line.ops() == ["join", "sync"]
    _until(lambda: "ran" in line.ops())
    gevent.sleep(REPORT_AFTER)  # nothing else follows
    assert line.sent[2:] == [wire.ran(Share("alice"), "m", "gpu1", 2, 0.75),  # seconds on the test's clock
                             wire.ran(Share("bob"), "m", "gpu1", 1, 1.0)]


def test_under_load_a_request_is_told_as_started_only_once_it_has_run_report_after_itself(arbiter, clock):
    # The first request's teller finds a second one running that started half a report_after later: it tells
    # the first only. The second ends before it has run report_after and is told as ran, never as a start.
    report_after = 2.0  # the second has run a second, not report_after, when the first is told: a wide margin
    client = _client(arbiter, clock, borrow=True, report_after=report_after)
    line = arbiter.line
    line.answer(_lend("l1", slots=2))
    first, second = _ticket("t1"), _ticket("t2", "bob")
    client.admit(first)
    gevent.sleep(report_after / 2)
    client.admit(second)
    clock.advance(0.25)  # the second's slot-time, on the client's clock
    _until(lambda: "start" in line.ops(), timeout=2 * report_after)
    assert line.sent[2:] == [wire.start(first, "l1", _placement(), [SPECS[0]])]
    client.end("t2")
    _until(lambda: "ran" in line.ops(), timeout=2 * report_after)
    client.end("t1")
    assert line.sent[2:] == [wire.start(first, "l1", _placement(), [SPECS[0]]),
                             wire.ran(Share("bob"), "m", "gpu1", 1, 0.25),
                             {"op": "end", "id": "t1", "load_seconds": None}]


@pytest.mark.parametrize("classes, prompt_below, ticket, on_loan", [
    ((INTERACTIVE,), 1024, _ticket("t1", prompt=1023), True),
    ((INTERACTIVE,), 1024, _ticket("t1", prompt=1024), False),
    ((INTERACTIVE,), 1024, _ticket("t1", klass=BATCH), False),
    ((BATCH,), 0, _ticket("t1", klass=BATCH, prompt=100_000), True),  # the loan's to say, not the client's
    ((BATCH,), 0, _ticket("t1"), False),
], ids=["short", "long", "batch", "batch loan, long prompt", "batch loan, interactive"])
def test_a_request_starts_on_a_loan_exactly_when_the_loan_admits_it(arbiter, clock, classes, prompt_below, ticket,
                                                                     on_loan):
    client = _client(arbiter, clock, borrow=True)
    arbiter.line.answer(_lend("l1", classes=classes, prompt_below=prompt_below))
    arbiter.grants_at_once()
    client.admit(ticket)
    assert arbiter.line.ops()[2:] == ([] if on_loan else ["submit"])


@pytest.mark.parametrize("ticket", [
    _ticket("t1", model="other"), _ticket("t1", candidates=("gpu2",)), _ticket("t1", asked={"num_ctx": 8192}),
], ids=["another model", "another server", "a reload"])
def test_a_request_the_lent_slot_does_not_fit_asks_the_arbiter(arbiter, clock, ticket):
    client = _client(arbiter, clock, borrow=True)
    arbiter.line.answer(_lend("l1", server="gpu1"))
    arbiter.grants_at_once()
    client.admit(ticket)
    assert arbiter.line.ops()[2:] == ["submit"]


def test_requests_start_on_the_loan_with_most_slots_left_and_ask_once_every_lent_slot_is_taken(arbiter, clock):
    client = _client(arbiter, clock, borrow=True)
    arbiter.line.answer(_lend("l1", "gpu1", slots=1))
    arbiter.line.answer(_lend("l2", "gpu2", slots=2))
    arbiter.grants_at_once()
    servers = [client.admit(_ticket(f"t{n}", candidates=("gpu1", "gpu2"))).placement.server for n in range(3)]
    assert servers == ["gpu2", "gpu1", "gpu2"] and arbiter.line.ops() == ["join", "sync"]
    client.admit(_ticket("t3", candidates=("gpu1", "gpu2")))
    assert arbiter.line.ops()[2:] == ["submit"]
    client.end("t1")  # a slot of l1 is free again
    assert client.admit(_ticket("t4", candidates=("gpu1", "gpu2"))).placement.server == "gpu1"
    assert arbiter.line.ops()[2:] == ["submit"]


def test_a_recalled_loan_is_given_back_after_every_start_not_yet_told_and_lends_no_more(arbiter, clock):
    client = _client(arbiter, clock, borrow=True)
    line = arbiter.line
    line.answer(_lend("l1", slots=2))
    tickets = [_ticket("t1"), _ticket("t2", "bob")]
    for ticket in tickets:
        assert client.admit(ticket).placement == _placement()
    line.answer({"op": "recall", "id": "", "loan": "l1"})
    _until(lambda: "returned" in line.ops())
    assert line.sent[2:] == [*(wire.start(ticket, "l1", _placement(), [SPECS[0]]) for ticket in tickets),
                             {"op": "returned", "id": "", "loan": "l1"}]
    line.answer({"op": "recall", "id": "", "loan": "l1"})  # again, or another arbiter's: nothing to give back
    arbiter.grants_at_once()
    client.admit(_ticket("t3"))
    gevent.sleep(2 * REPORT_AFTER)
    assert line.ops()[2:] == ["start", "start", "returned", "submit"]  # t3 asked; no start told twice
    client.end("t1")
    assert line.sent[-1] == {"op": "end", "id": "t1", "load_seconds": None}


def test_a_request_on_a_loan_when_the_line_drops_is_told_to_the_next_arbiter_as_running_and_the_loan_is_gone(
        arbiter, clock):
    client = _client(arbiter, clock, borrow=True)
    arbiter.line.answer(_lend("l1"))
    on_loan = _ticket("t1")
    client.admit(on_loan)
    arbiter.line.drop()
    _until(lambda: len(arbiter.lines) == 2 and arbiter.line.reading)
    second = arbiter.line
    assert second.sent == [{"op": "join", "id": ""}, wire.sync([wire.running(on_loan, _placement(), [SPECS[0]])], [])]
    arbiter.grants_at_once()
    client.admit(_ticket("t2"))
    gevent.sleep(2 * REPORT_AFTER)
    client.end("t1")
    assert second.ops() == ["join", "sync", "submit", "end"]  # never told again as a start, nor as ran


def test_with_no_arbiter_reachable_for_unreachable_timeout_requests_get_a_503_until_one_answers(arbiter, clock):
    arbiter.down = True
    arbiter.while_down = lambda: clock.advance(6.0)  # each try takes a while on the test's clock
    client = SchedulerClient(arbiter.connect, 600.0, specs=SPECS, clock=clock, unreachable_timeout=10.0)
    started = time.monotonic()
    with gevent.Timeout(2), pytest.raises(Overloaded) as first:
        client.admit(_ticket("t1"))
    assert time.monotonic() - started < 1.0 and arbiter.refusals == 3  # at 6, 12 (past 10) seconds after the first
    assert "scheduling.unreachable_timeout" in first.value.message and first.value.retry_after == 10.0
    with gevent.Timeout(0), pytest.raises(Overloaded):  # the next one at once: it never waits
        client.admit(_ticket("t2"))
    arbiter.down = False
    _until(lambda: arbiter.lines and arbiter.line.reading)
    arbiter.grants_at_once()
    assert client.admit(_ticket("t3")).ticket == "t3"
    assert arbiter.line.sent[0] == wire.sync([], [])  # the requests refused were dropped, not kept waiting


def test_a_client_that_leaves_while_its_request_waits_withdraws_its_ticket(arbiter, clock):
    client = _client(arbiter, clock)
    watched = {}

    def watch(on_gone):
        watched["on_gone"] = on_gone
        return lambda: watched.setdefault("stopped", True)
    asking = gevent.spawn(client.admit, _ticket("t1"), watch=watch)
    _until(lambda: "on_gone" in watched)
    assert "stopped" not in watched
    watched["on_gone"]()
    with pytest.raises(ClientLeft):
        asking.get(timeout=1)
    assert arbiter.line.sent[1:] == [wire.submit(_ticket("t1"), [SPECS[0]]), {"op": "cancel", "id": "t1"}]
    assert watched["stopped"]


def test_a_grant_its_transport_does_not_accept_is_dropped_and_the_request_waits_on_for_the_next(arbiter, clock):
    client = _client(arbiter, clock, accept=lambda ticket, grant: grant.get("term") == 2)
    asking = gevent.spawn(client.admit, _ticket("t1"))
    _until(lambda: "submit" in arbiter.line.ops())
    arbiter.line.answer(_grant("t1", "gpu1", term=1))  # a deposed arbiter's
    gevent.sleep(0.01)  # the request reads it, and drops it, before the next comes
    arbiter.line.answer(_grant("t1", "gpu2", term=2))
    assert asking.get(timeout=1).placement.server == "gpu2"


def test_the_arbiters_state_is_asked_on_a_line_of_its_own_which_is_closed_after(arbiter, clock):
    client = SchedulerClient(arbiter.connect, 600.0, ask=arbiter.ask, specs=SPECS, clock=clock)
    arbiter.on_send = lambda message: [wire.status(message["id"], {"waiting": 0})]
    assert client.status(timeout=1) == {"waiting": 0}
    assert arbiter.questions[0].closed and arbiter.lines == []


class ClockedReply:
    """A waiting primitive on the test's clock: a wait nobody answers takes its whole time at once."""

    def __init__(self, clock: ManualClock, waits: list) -> None:
        self._clock, self._waits, self._message = clock, waits, None

    def set(self, message: dict) -> None:
        self._message = message

    def ready(self) -> bool:
        return self._message is not None

    def wait(self, seconds: float) -> dict | None:
        self._waits.append(round(seconds, 3))
        if self._message is None:
            self._clock.advance(max(0.0, seconds))
        return self._message


def test_the_waiting_primitive_is_the_callers_so_a_wait_runs_on_the_tests_clock(arbiter, clock):
    waits = []
    client = _client(arbiter, clock, max_wait=30.0, reply=lambda: ClockedReply(clock, waits))
    started = time.monotonic()
    with pytest.raises(Overloaded, match="within 30s") as refused:
        client.admit(_ticket("t1"))  # the arbiter never answers
    assert waits == [0.005, 30.995] and clock() == pytest.approx(131.0)  # a prompt grant, then up to the bound
    assert refused.value.retry_after == 30.0 and time.monotonic() - started < 0.5
    assert arbiter.line.ops()[-1] == "cancel"
    arbiter.grants_at_once()
    assert client.admit(_ticket("t2")) == Grant("t2", _placement(), 0.0)  # set as it was submitted: no wait
    assert waits[-1] == 0.005
