"""The dispatcher: which server, and when; failover, cooldown, slots, and the client watched until Ollama answers."""

import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from ollama_proxy.dispatch import dispatcher as dispatcher_module
from ollama_proxy.dispatch.body import OllamaBody
from ollama_proxy.dispatch.dispatcher import Dispatcher, OllamaModel
from ollama_proxy.errors import Overloaded, UpstreamConnectTimeout, UpstreamTimeout, UpstreamUnavailable
from ollama_proxy.ledger import RequestRecord
from ollama_proxy.scheduler.decisions.prefix import chain_of
from ollama_proxy.scheduler.transport.admission import Admitted, Requester
from tests.unit.backends.stub_servers import StubServer, stub_pool

NOBODY = Requester()


def _send(dispatcher, who=NOBODY, **request):
    return dispatcher.send("m", "POST", "/api/chat", who, **request)


@pytest.mark.parametrize("failure", [
    UpstreamUnavailable("cannot reach: connection refused"),
    UpstreamConnectTimeout("did not accept a connection within 1s"),
    503,
])
def test_a_failing_server_is_passed_over_and_cooled_down(tmp_path, failure):
    first = StubServer("default", ["m:latest"], chat=failure)
    second = StubServer("gpu2", ["m:latest"])
    pool = stub_pool(tmp_path, first, second)
    pool.servers[0].loaded = frozenset(["m:latest"])  # preferred, until it fails
    with _send(Dispatcher(pool, None, 60.0)) as answer:
        assert (answer.status, answer.server) == (200, "gpu2")
    assert pool.servers[0].cooling(time.monotonic()) and pool.servers[0].last_error
    with _send(Dispatcher(pool, None, 60.0)) as answer:
        assert answer.server == "gpu2"
    assert first.calls == 1  # not tried again while cooling down


def test_after_the_cooldown_the_server_is_used_again(tmp_path):
    first = StubServer("default", ["m:latest"], chat=UpstreamUnavailable("refused"))
    pool = stub_pool(tmp_path, first, StubServer("gpu2", ["m:latest"], chat=UpstreamUnavailable("refused")),
                 cooldown=0.2)
    with pytest.raises(UpstreamUnavailable):
        _send(Dispatcher(pool, None, 60.0))
    first.chat = 200
    time.sleep(0.25)
    with _send(Dispatcher(pool, None, 60.0)) as answer:
        assert answer.server == "default"


def test_the_last_servers_error_is_the_answer(tmp_path):
    pool = stub_pool(tmp_path, StubServer("default", ["m:latest"], chat=500),
                     StubServer("gpu2", ["m:latest"], chat=502))
    with _send(Dispatcher(pool, None, 60.0)) as answer:
        assert answer.status in (500, 502)
    assert all(s.cooling(time.monotonic()) for s in pool.servers)


@pytest.mark.parametrize("status", [400, 404, 501, 505])
def test_an_answer_about_the_request_is_its_answer_and_takes_no_server_out_of_rotation(tmp_path, status):
    """Ollama 0.33 answers 501 to an embedding asked of a chat model: the request's fault, not the server's."""
    first = StubServer("default", ["m:latest"], chat=status)
    second = StubServer("gpu2", ["m:latest"])
    pool = stub_pool(tmp_path, first, second)
    pool.servers[0].loaded = frozenset(["m:latest"])
    with _send(Dispatcher(pool, None, 60.0)) as answer:
        assert (answer.status, answer.server) == (status, "default")
    assert second.calls == 0 and not any(s.cooling(time.monotonic()) for s in pool.servers)


def test_a_timeout_after_connecting_is_not_retried_elsewhere(tmp_path):
    first = StubServer("default", ["m:latest"], chat=UpstreamTimeout("did not answer within 5s"))
    second = StubServer("gpu2", ["m:latest"])
    pool = stub_pool(tmp_path, first, second)
    pool.servers[0].loaded = frozenset(["m:latest"])
    with pytest.raises(UpstreamTimeout):
        _send(Dispatcher(pool, None, 60.0))
    assert second.calls == 0 and pool.servers[0].in_flight == 0


def test_max_concurrent_waits_then_overloaded_on_a_server_the_proxy_does_not_schedule(tmp_path):
    pool = stub_pool(tmp_path, StubServer("default", []), StubServer("gpu2", ["m:latest"]), max_concurrent=1,
                 slot_wait=0.2, scheduling=False)
    held = _send(Dispatcher(pool, None, 60.0))
    assert pool.servers[1].in_flight == 1
    started = time.monotonic()
    with pytest.raises(Overloaded, match="routing.slot_wait") as caught:
        _send(Dispatcher(pool, None, 60.0))
    assert 0.2 <= time.monotonic() - started < 1.0
    assert caught.value.status == 503 and caught.value.retry_after == 1
    held.close()
    held.close()  # closing twice frees the slot once
    assert pool.servers[1].in_flight == 0
    with _send(Dispatcher(pool, None, 60.0)) as answer:
        assert answer.server == "gpu2"


class StubAdmission:
    """Grants every request a slot on the server it names, at once or after a wait; keeps what it was asked."""

    def __init__(self, server, wait=0.0, options=None, cached=None):
        self.server, self.wait, self.options, self.cached = server, wait, options, cached
        self.asked = []
        self.prefixes = []
        self.embeds = []
        self.released = 0

    def admit(self, who, model, candidates, asked, deadline=None, prefix=(), embeds=False):
        self.asked.append((model, candidates, asked, deadline))
        self.prefixes.append(prefix)
        self.embeds.append(embeds)
        time.sleep(self.wait)
        return Admitted(self.server, self.options if self.options is not None else asked, self._release, self.cached)

    def _release(self):
        self.released += 1


@pytest.fixture
def scheduled(monkeypatch):
    """A worker where the scheduler decides (a gevent worker, which unit tests are not)."""
    monkeypatch.setattr(dispatcher_module, "gevent_active", lambda: True)


@pytest.mark.parametrize("wait, body", [
    (0.0, {"model": "m"}),  # granted at once, streamed: Ollama sends nothing before its first token
    (0.05, {"model": "m"}),  # it waited
    (0.0, {"model": "m", "stream": False}),  # nothing comes before the whole answer
], ids=["prompt stream", "waited stream", "whole answer"])
def test_a_granted_request_is_cancelled_if_its_client_leaves_before_ollama_answers(tmp_path, monkeypatch, scheduled,
                                                                                    wait, body):
    pool = stub_pool(tmp_path, StubServer("default", ["m:latest"]))
    watching = []

    @contextmanager
    def cancelled_if_client_leaves(environ, stop=None, within=0.0):
        watching.append(environ)
        assert stop is not None and within == 0.5  # Ollama is told to stop, and let go within service.cut_hold
        yield
    monkeypatch.setattr(dispatcher_module, "cancelled_if_client_leaves", cancelled_if_client_leaves)
    environ = {}
    with _send(Dispatcher(pool, StubAdmission("default", wait), 60.0), Requester(environ=environ),
               body=OllamaBody(body)):
        pass
    assert watching == [environ]


def test_the_whole_wait_is_bounded_from_when_the_request_asks_whatever_server_fails(tmp_path, scheduled):
    """A server that cannot be reached is passed over; the next ask for a slot keeps the first deadline."""
    first = StubServer("default", ["m:latest"], chat=UpstreamUnavailable("refused"))
    pool = stub_pool(tmp_path, first, StubServer("gpu2", ["m:latest"]))
    admission = StubAdmission("default")
    admission.admit = lambda who, model, candidates, asked, deadline=None, prefix=(), embeds=False: (
        StubAdmission.admit(admission, who, model, candidates, asked, deadline)
        if "default" in candidates else Admitted("gpu2", asked, admission._release))
    started = time.monotonic()
    with _send(Dispatcher(pool, admission, 60.0), body=OllamaBody({"model": "m"})) as answer:
        assert answer.server == "gpu2"
        assert admission.released == 1  # the slot of the server that failed, given back
    assert admission.released == 2  # and the answer's, once it closed
    deadline = admission.asked[0][3]
    assert started + 60.0 <= deadline < time.monotonic() + 60.0


def test_the_grants_estimate_of_the_cached_prompt_is_noted_for_the_server_that_answered_alone(tmp_path, scheduled):
    first = StubServer("default", ["m:latest"], chat=UpstreamUnavailable("refused"))
    pool = stub_pool(tmp_path, first, StubServer("gpu2", ["m:latest"]))
    admission = StubAdmission("default", cached=5000)
    admission.admit = lambda who, model, candidates, asked, deadline=None, prefix=(), embeds=False: (
        StubAdmission.admit(admission, who, model, candidates, asked, deadline)
        if "default" in candidates else Admitted("gpu2", asked, admission._release, 3990))
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0)
    with _send(Dispatcher(pool, admission, 60.0), Requester(record=record), body=OllamaBody({"model": "m"})):
        pass
    assert (record.cached_tokens_estimated, record.cached_tokens) == (3990, None)  # the estimate, not Ollama's word


def test_a_grant_without_an_estimate_notes_none(tmp_path, scheduled):
    pool = stub_pool(tmp_path, StubServer("default", ["m:latest"]))
    record = RequestRecord("r1", "POST", "/api/chat", "-", 0.0)
    with _send(Dispatcher(pool, StubAdmission("default"), 60.0), Requester(record=record),
               body=OllamaBody({"model": "m"})):
        pass
    assert record.cached_tokens_estimated is None


def test_the_body_goes_with_the_options_granted_and_as_it_came_when_they_are_the_asked_ones(tmp_path, scheduled):
    server = StubServer("default", ["m:latest"])
    sent = []
    answer_chat = server.open
    server.open = lambda method, path, **request: sent.append(request.get("body")) or answer_chat(method, path)
    pool = stub_pool(tmp_path, server)
    raw = b'{"model": "m", "options": {"num_ctx": 2048, "seed": 1}}'
    body = OllamaBody({"model": "m", "options": {"num_ctx": 2048, "seed": 1}}, raw)
    _send(Dispatcher(pool, StubAdmission("default"), 60.0), body=body).close()
    _send(Dispatcher(pool, StubAdmission("default", options={"num_ctx": 8192}), 60.0), body=body).close()
    assert sent[0] is raw
    assert sent[1] == b'{"model":"m","options":{"num_ctx":8192,"seed":1}}'


def test_the_scheduler_is_told_the_prompt_the_server_is_sent_as_its_caches_compare_it(tmp_path, scheduled):
    admission = StubAdmission("default")
    pool = stub_pool(tmp_path, StubServer("default", ["m:latest"]))
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    _send(Dispatcher(pool, admission, 60.0), body=OllamaBody(body)).close()
    assert admission.prefixes == [chain_of("/api/chat", body)] and len(admission.prefixes[0]) == 3
    _send(Dispatcher(pool, admission, 60.0, place_by_prompt=False), body=OllamaBody(body)).close()
    assert admission.prefixes[1] == ()  # scheduling.prompt_placement off: placed by model alone


def test_an_embedding_tells_the_scheduler_so_and_a_chat_does_not(tmp_path, scheduled):
    pool = stub_pool(tmp_path, StubServer("default", ["m:latest"]))
    admission = StubAdmission("default")
    _send(Dispatcher(pool, admission, 60.0), body=OllamaBody({"model": "m", "messages": []})).close()
    Dispatcher(pool, admission, 60.0).send("m", "POST", "/api/embed", NOBODY,
                                           body=OllamaBody({"model": "m", "input": "x"})).close()
    assert admission.embeds == [False, True]


def test_work_that_is_no_gpus_is_sent_at_once_without_asking_the_scheduler(tmp_path, scheduled):
    admission = StubAdmission("default")
    pool = stub_pool(tmp_path, StubServer("default", ["m:latest"]))
    Dispatcher(pool, admission, 60.0).send("m", "POST", "/api/show", NOBODY, body=b"{}").close()
    assert admission.asked == []


def test_a_wait_for_a_lock_file_slot_counts_as_waiting_for_a_slot_on_the_record(tmp_path):
    pool = stub_pool(tmp_path, StubServer("default", []), StubServer("gpu2", ["m:latest"]), max_concurrent=1,
                     slot_wait=0.3, scheduling=False)
    record = RequestRecord("r", "POST", "/api/chat", "-", 0.0)
    dispatcher = Dispatcher(pool, None, 60.0)
    held = _send(dispatcher)
    seen = []
    real_take = pool.take_slot
    pool.take_slot = lambda server: seen.append(record.slots_awaited) or real_take(server)
    with pytest.raises(Overloaded):
        _send(dispatcher, Requester(record=record))
    assert seen == [1] and record.slots_awaited == 0
    held.close()


class RecordingDispatcher:
    """Answers ``send`` with what the model's backend asked of it."""

    pool = SimpleNamespace(default=SimpleNamespace(backend=SimpleNamespace(settings=SimpleNamespace(
        connect_timeout=5.0))))

    def send(self, model, method, path, who, body=None, **request):
        return model, who, body, request


@pytest.mark.parametrize("read_timeout, request_fields, sent", [
    ((900, "models.overrides.llava.enforce.timeout"), {},
     {"timeout": (5.0, 900), "timeout_setting": "models.overrides.llava.enforce.timeout"}),
    (None, {}, {}),  # the server's own: service.read_timeout
    ((900, "models.defaults.timeout"), {"timeout": (1, 1), "timeout_setting": "service.health_timeout"},
     {"timeout": (1, 1), "timeout_setting": "service.health_timeout"}),  # a caller's own bound wins
])
def test_a_models_timeout_goes_to_the_dispatcher_with_the_setting_it_comes_from(read_timeout, request_fields, sent):
    model = OllamaModel(RecordingDispatcher(), "llava:latest", NOBODY, read_timeout)
    assert model.open("POST", "/api/chat", **request_fields) == ("llava:latest", NOBODY, None, sent)


def test_a_models_backend_sends_for_its_caller_a_body_encoded_once_when_it_goes():
    who = Requester(environ={})
    model = OllamaModel(RecordingDispatcher(), "llava:latest", who)
    body = model.encode({"model": "llava:latest", "stream": True})
    _, sent_for, sent, _ = model.open("POST", "/api/chat", body=body)
    assert sent_for is who and sent is body and body.encoded() is body.encoded()


def test_each_try_that_reached_a_server_is_charged_its_slot_time_and_one_never_sent_nothing(tmp_path):
    pool = stub_pool(tmp_path, StubServer("default", ["m:latest"], chat=UpstreamUnavailable("refused")),
                     StubServer("gpu2", ["m:latest"], chat=503), StubServer("gpu3", ["m:latest"]))
    record = RequestRecord("r", "POST", "/api/chat", "", started=time.perf_counter())
    body = OllamaBody({"model": "m", "messages": [{"role": "user", "content": "x" * 40}]})
    with _send(Dispatcher(pool, None, 60.0), Requester(record=record), body=body) as answer:
        assert answer.server == "gpu3" and answer.hold is not None and record.gpu_seconds is not None
        failed_over = record.gpu_seconds  # gpu2's 503: it ran, and read no prompt
        assert record.prompt_tokens is None
    assert record.gpu_seconds > failed_over and record.prompt_tokens == 20 and record.measured  # gpu3 never reported


def test_work_that_is_no_gpus_holds_no_slot_to_charge(tmp_path):
    pool = stub_pool(tmp_path, StubServer("default", ["m:latest"]))
    record = RequestRecord("r", "POST", "/api/show", "", started=time.perf_counter())
    with Dispatcher(pool, None, 60.0).send("m", "POST", "/api/show", Requester(record=record)) as answer:
        assert answer.hold is None
    assert (record.gpu_seconds, record.measured) == (None, False)
