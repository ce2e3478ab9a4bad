"""The fake's reload rule, case by case as Ollama 0.33's server/sched.go decides (getRunner, needsReload).

Each case is a request's ``options`` as the fake reads them (``runner_options``: routes.go's
modelOptions and getRunner's floor), against the options a runner was loaded with.
"""

import pytest

from tests.fakes.clock import ManualClock
from tests.fakes.ollama_runner import Runner
from tests.fakes.ollama_scheduler import OllamaScheduler
from tests.fakes.ollama_slots import runner_options

VRAM_DEFAULT = 4096  # routes.go: the default context under 23 GiB of VRAM
TRAINED = 131072  # the model's training context


def asked(options, default=VRAM_DEFAULT):
    return runner_options(options, default_num_ctx=default, context_limit=TRAINED)


@pytest.mark.parametrize(("loaded", "request_options", "reloads"), [
    # needsReload: "if runner.numCtxAuto && req.numCtxAuto { optsNew.NumCtx = optsExisting.NumCtx }"
    pytest.param(asked(None), None, False, id="both-default"),
    # reflect.DeepEqual(optsExisting, optsNew) compares the values, not where they came from
    pytest.param(asked(None), {"num_ctx": 4096}, False, id="default-runner-explicit-equal"),
    pytest.param(asked(None), {"num_ctx": 2048}, True, id="default-runner-smaller-asked"),
    pytest.param(asked(None), {"num_ctx": 8192}, True, id="default-runner-larger-asked"),
    pytest.param(asked({"num_ctx": 8192}), None, True, id="explicit-runner-none-asked-gets-default"),
    pytest.param(asked({"num_ctx": 8192}), {"num_ctx": 2048}, True, id="smaller-reloads-too"),
    pytest.param(asked({"num_ctx": 8192}), {"num_ctx": 8192}, False, id="equal"),
    # effectiveContext: a num_ctx beyond the training context is cut to it before comparing
    pytest.param(asked({"num_ctx": 1_000_000}), {"num_ctx": 2_000_000}, False, id="both-beyond-training"),
    # getRunner: "if opts.NumCtx < 4 { opts.NumCtx = 4 }"
    pytest.param(asked({"num_ctx": 4}), {"num_ctx": 1}, False, id="floor-of-4"),
    # "if optsNew.NumGPU < 0": a request leaving num_gpu to Ollama takes any runner
    pytest.param(asked({"num_gpu": 20}), {"num_gpu": -1}, False, id="num-gpu-negative"),
    pytest.param(asked(None), {"num_batch": 1024}, True, id="num-batch"),
])
def test_a_request_reloads_a_runner_exactly_when_sched_go_says(loaded, request_options, reloads):
    assert loaded.reload_needed_for(asked(request_options)) is reloads


def test_a_configured_context_length_is_not_automatic_but_the_same_for_every_request_naming_none():
    """OLLAMA_CONTEXT_LENGTH=8192 (or a Modelfile num_ctx): a request naming none gets 8192, as an explicit one."""
    configured = asked({"num_ctx": 8192})
    assert not configured.reload_needed_for(asked(None, default=8192))
    assert configured.reload_needed_for(asked({"num_ctx": 2048}, default=8192))


def test_llama_server_runs_every_slots_context_together():
    """llm/llama_server.go: "-c", NumCtx * numParallel, "-np", numParallel."""
    runner = Runner(1, "llama3.2", asked({"num_ctx": 8192}), parallel=2, load_started=0, ready_at=0, keep_alive=0)
    assert (runner.context_length, runner.ctx_size) == (8192, 16384)


def _one_at_a_time(asks):
    """Send Ollama the requests one after another, each done before the next; return its llama-servers' -c."""
    clock = ManualClock(0.0)
    ollama = OllamaScheduler(clock, num_parallel=2, load_seconds=1.0)
    for options in asks:
        record = ollama.submit("llama3.2", asked(options))
        clock.advance(2.0)
        ollama.finish(record)
    return [runner.ctx_size for runner in [*ollama.unloaded, *ollama.loaded()]], ollama.stats()


def test_default_then_2048_then_8192_as_sent_loads_the_model_three_times():
    """What Ollama 0.33 logged when the proxy passed num_ctx through: -c 8192, -c 4096, then -c 16384 (-np 2)."""
    sizes, stats = _one_at_a_time([None, {"num_ctx": 2048}, {"num_ctx": 8192}, None, {"num_ctx": 2048}])
    assert sizes[:3] == [8192, 4096, 16384] and (stats.loads, stats.reloads) == (5, 4)


def test_one_value_sent_with_every_request_loads_the_model_once():
    sizes, stats = _one_at_a_time([{"num_ctx": 8192}] * 5)
    assert sizes == [16384] and (stats.loads, stats.reloads) == (1, 0)
