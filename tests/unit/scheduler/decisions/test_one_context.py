"""The scheduler's reload options, sent to the model of Ollama's scheduler: how often it loads a model.

Twelve requests for one model come at once, asking num_ctx 2048, 8192 and nothing, on one server
with two slots (``-np 2``). Ollama reloads a model on any other num_ctx (server/sched.go,
needsReload), and a request naming none gets its default (4096 here); the proxy must send
values such that the model loads once.
"""

from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.estimates import Estimates
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec, Start
from tests.fakes.clock import ManualClock
from tests.fakes.ollama_runner import RUNNING
from tests.fakes.ollama_scheduler import OllamaScheduler
from tests.fakes.ollama_slots import runner_options

MIXED = [{"num_ctx": 2048}, {"num_ctx": 8192}, {}] * 4
ANSWER_SECONDS = 2.0
STEP = 0.25
DEFAULT_BOUNDS = Bounds()


class Bench:
    """The proxy's scheduler in front of one Ollama server; time moves by hand."""

    def __init__(self, bounds: Bounds = DEFAULT_BOUNDS, train_ctx: int = 131072) -> None:
        self.clock = ManualClock(0.0)
        self.train_ctx = train_ctx  # the model's: Ollama caps a num_ctx at it
        self.starts: list[Start] = []  # how the proxy placed each request
        self.proxy = Scheduler([ServerSpec("gpu1", num_parallel=2, max_loaded_models=1)], bounds, Estimates())
        self.ollama = OllamaScheduler(self.clock, num_parallel=2, max_loaded_models=1, load_seconds=1.0)
        self.sent: dict[str, tuple] = {}  # ticket -> (options sent, Ollama's record)
        self.ids = iter(range(1_000_000))
        self.ps()  # the proxy has read what the server has loaded before the first request

    def ps(self) -> None:
        """Let the proxy read /api/ps, as its refresh does."""
        loaded = {r.model: Loaded({"num_ctx": r.context_length}, train_ctx=self.train_ctx)
                  for r in self.ollama.loaded()}
        self._send(self.proxy.refresh("gpu1", loaded, self.clock.now))

    def burst(self, asks: list[dict]) -> None:
        for asked in asks:
            n = next(self.ids)
            ticket = Ticket(f"t{n}", Share(f"p{n % 3}", 1.0, "interactive"), "m", ("gpu1",), asked=dict(asked))
            self._send(self.proxy.submit(ticket, self.clock.now))
        while self.proxy.waiting or self.proxy.running:
            self.clock.advance(STEP)
            self._send(self.proxy.dispatch(self.clock.now))  # as the arbiter does while requests wait
            self.ollama.settle()
            for ticket, (_, record) in list(self.sent.items()):
                if record.state == RUNNING and record.started_at + ANSWER_SECONDS <= self.clock.now:
                    self.ollama.finish(record)
                    self._send(self.proxy.end(ticket, self.clock.now))
            assert self.clock.now < 600, "the requests never ran"

    def _send(self, grants) -> None:
        for grant in grants:
            options = grant.placement.options
            asked = runner_options(options, default_num_ctx=4096, context_limit=self.train_ctx)
            record = self.ollama.submit("m", asked)
            self.sent[grant.ticket] = (options, record)
            self.starts.append(grant.placement.start)

    def loads(self) -> int:
        return self.ollama.stats().loads


def test_a_server_that_never_ran_the_model_loads_it_once_for_mixed_contexts_the_proxy_knows():
    bench = Bench()
    bench.proxy.servers["gpu1"].asked["m"] = {"num_ctx": 8192}  # asked for before, here or when it last loaded
    bench.burst(MIXED)
    assert bench.loads() == 1
    assert {options.get("num_ctx") for options, _ in bench.sent.values()} == {8192}  # those asking none too


def test_a_fresh_proxy_loads_the_model_once_for_a_burst_of_mixed_contexts():
    """The first load waits ``load_gather`` for the requests that come with it, and takes the largest they ask."""
    bench = Bench()
    bench.burst(MIXED)
    assert (bench.loads(), bench.ollama.stats().reloads) == (1, 0)
    assert [r.ctx_size for r in bench.ollama.loaded()] == [16384]  # num_ctx 8192 on each of two slots


def test_without_load_gather_the_first_burst_reloads_once_and_a_fresh_server_then_loads_once():
    """Loaded at once, the first request loads before the larger one is asked: one reload, to 8192, which stays."""
    first = Bench(Bounds(load_gather=0))
    first.burst(MIXED)
    assert (first.loads(), first.ollama.stats().reloads) == (2, 1)
    second = Bench()
    second.proxy = first.proxy  # the same proxy, in front of a fresh server
    first.proxy.servers["gpu1"].runners.clear()
    second.burst(MIXED)
    assert second.loads() == 1


def test_a_model_loaded_with_ollamas_default_reloads_once_for_a_larger_context():
    bench = Bench()
    record = bench.ollama.submit("m", runner_options(None, default_num_ctx=4096, context_limit=131072))
    bench.clock.advance(2.0)
    bench.ollama.finish(record)
    bench.ps()
    bench.burst(MIXED)
    assert bench.loads() == 2  # the load before, and one reload to 8192
    assert [r.ctx_size for r in bench.ollama.loaded()] == [16384]


def test_a_model_loaded_with_a_larger_context_serves_every_request_without_a_reload():
    bench = Bench()
    record = bench.ollama.submit("m", runner_options({"num_ctx": 16384}, default_num_ctx=4096, context_limit=131072))
    bench.clock.advance(2.0)
    bench.ollama.finish(record)
    bench.ps()
    bench.burst(MIXED)
    assert bench.loads() == 1  # the load before only
    assert {options.get("num_ctx") for options, _ in bench.sent.values()} == {16384}


def test_requests_naming_no_context_share_the_default_one():
    bench = Bench()
    bench.burst([{}] * 12)
    assert bench.loads() == 1 and {tuple(options) for options, _ in bench.sent.values()} == {()}


def test_a_first_request_naming_none_then_smaller_and_larger_ones_load_once_with_the_largest():
    """As reported on Ollama 0.33: -c 8192, then -c 4096, then -c 16384 (-np 2); now -c 16384 alone."""
    bench = Bench()
    bench.burst([{}, {"num_ctx": 2048}, {"num_ctx": 8192}] * 4)
    assert (bench.loads(), bench.ollama.stats().reloads) == (1, 0)
    assert [r.ctx_size for r in [*bench.ollama.unloaded, *bench.ollama.loaded()]] == [16384]


def test_a_context_past_the_models_training_one_reloads_nothing_and_drains_nothing():
    """Ollama caps num_ctx at the model's training context before it compares: 131072 on a model trained on
    32768 and loaded with it is the loaded runner, and the proxy sends it there at once, as a warm start."""
    bench = Bench(train_ctx=32768)
    record = bench.ollama.submit("m", runner_options({"num_ctx": 32768}, default_num_ctx=4096, context_limit=32768))
    bench.clock.advance(2.0)
    bench.ollama.finish(record)
    bench.ps()
    bench.burst([{"num_ctx": 131072}, {"num_ctx": 32768}, {}] * 4)
    assert (bench.loads(), bench.ollama.stats().reloads) == (1, 0)  # the load before only
    assert set(bench.starts) == {Start.WARM}  # none waited for the runner to drain for a reload

