import pytest

from ollama_proxy.observability.metric_labels import MAX_WAITING, OTHER, ModelLabels, method_label
from tests.fakes.clock import ManualClock

INTERVAL = 10.0


@pytest.mark.parametrize("method, label", [
    ("GET", "GET"), ("HEAD", "HEAD"), ("POST", "POST"), ("PUT", "PUT"), ("DELETE", "DELETE"),
    ("OPTIONS", "OPTIONS"), ("PATCH", "PATCH"), ("TRACE", "TRACE"), ("CONNECT", "CONNECT"),
    ("X000001", OTHER), ("get", OTHER), ("PROPFIND", OTHER), ("", OTHER),
])
def test_method_label(method, label):
    assert method_label(method) == label


class Backends:
    """What the backends list: ``held`` known without asking, ``listed`` once read; reads counted."""

    def __init__(self, held=(), listed=()):
        self.held, self.listed, self.reads = set(held), list(listed), 0
        self.started = []  # reads started and not yet run, when the test runs them itself

    def read(self):
        self.reads += 1
        return self.listed

    def labels(self, clock=None, run_at_once=True, providers=()) -> ModelLabels:
        start = (lambda read: read()) if run_at_once else self.started.append
        return ModelLabels(self.held.__contains__, self.read, INTERVAL, providers=providers,
                           clock=clock or ManualClock(), start=start)


@pytest.mark.parametrize("name", [
    "llama3.2", "Llama3.2", "llama3.2:latest", "LLAMA3.2:Latest", " llama3.2 ", "library/llama3.2",
    "registry.ollama.ai/library/llama3.2", "https://registry.ollama.ai/library/llama3.2:latest",
])
def test_every_spelling_of_a_listed_model_has_its_canonical_name(name):
    backends = Backends(held={"llama3.2:latest"})
    assert backends.labels().label(name) == "llama3.2:latest"
    assert backends.reads == 0  # known without asking


@pytest.mark.parametrize("name", ["llama3.3", "made-up-model", "llama3.2:1b", "", "X" * 300])
def test_a_model_no_backend_lists_is_other(name):
    assert Backends(held={"llama3.2:latest"}).labels().label(name) == OTHER


def test_the_backends_are_read_at_most_once_an_interval_however_many_names_are_not_listed():
    clock = ManualClock()
    backends = Backends()
    labels = backends.labels(clock)
    for n in range(200):
        labels.label(f"made-up-{n}")
        labels.count(f"made-up-{n}", lambda label: None)
    assert backends.reads == 1
    clock.advance(INTERVAL)
    labels.label("made-up-again")
    assert backends.reads == 2


def test_a_model_listed_since_the_last_read_gets_its_label_from_the_next_one():
    clock = ManualClock()
    backends = Backends(listed=["llama3.2"])
    labels = backends.labels(clock)
    assert labels.label("qwen3") == OTHER
    backends.listed = ["llama3.2", "Qwen3:latest"]  # pulled meanwhile
    assert labels.label("qwen3") == OTHER  # the interval is not over: no read
    clock.advance(INTERVAL)
    labels.label("qwen3")  # starts a read, run at once here
    assert labels.label("qwen3") == "qwen3:latest"
    assert labels.label("llama3.2") == "llama3.2:latest"


def test_counts_of_a_name_not_listed_wait_for_the_read_under_way():
    backends = Backends(listed=["llama3.2"])
    labels = backends.labels(run_at_once=False)
    counted = []
    labels.count("Llama3.2", counted.append)  # the first read of the worker starts
    labels.count("made-up", counted.append)
    assert counted == [] and len(backends.started) == 1
    backends.started.pop()()
    assert counted == ["llama3.2:latest", OTHER]
    labels.count("other-made-up", counted.append)  # read a moment ago: counted at once
    assert counted[-1] == OTHER and backends.started == []


def test_the_counts_held_for_a_read_are_bounded():
    backends = Backends()
    labels = backends.labels(run_at_once=False)
    counted = []
    for n in range(MAX_WAITING + 5):
        labels.count(f"made-up-{n}", counted.append)
    assert counted == [OTHER] * 5  # past the bound: at once
    backends.started.pop()()
    assert len(counted) == MAX_WAITING + 5


def test_a_failed_read_still_hands_back_the_counts_it_held():
    def read():
        raise RuntimeError("the listing broke")
    labels = ModelLabels(lambda name: False, read, INTERVAL, clock=ManualClock(), start=lambda run: run())
    counted = []
    with pytest.raises(RuntimeError):
        labels.count("llama3.2", counted.append)
    assert counted == [OTHER]


@pytest.mark.parametrize("model, backend, named", [
    ("gpt-4o", "lab", "lab:gpt-4o"),  # a provider's model, as its listing names it
    ("llama3.2", "gpu1", "llama3.2"),
    ("llama3.2", None, "llama3.2"),
    (None, "lab", ""),
])
def test_a_providers_model_is_named_as_its_listing_names_it(model, backend, named):
    assert Backends().labels(providers={"lab"}).named(model, backend) == named
