"""Tests of the clock-driven model of Ollama's scheduler that the fake Ollama runs requests through."""

import pytest

from tests.fakes.clock import ManualClock
from tests.fakes.ollama_runner import (
    CANCELLED,
    DROPPED,
    FINISHED,
    PENDING,
    READY,
    REJECTED,
    RUNNING,
    WAITING,
    RunnerOptions,
)
from tests.fakes.ollama_scheduler import OllamaScheduler


@pytest.fixture
def clock():
    return ManualClock(0.0)


def scheduler(clock, **settings):
    return OllamaScheduler(clock, **settings)


def ctx(num_ctx):
    return RunnerOptions(num_ctx=num_ctx, num_ctx_auto=False)


def states(*records):
    return [record.state for record in records]


def test_slots_bound_how_many_run_at_once(clock):
    sched = scheduler(clock, num_parallel=2)
    first, second, third = (sched.submit("llama3.2") for _ in range(3))
    assert states(first, second, third) == [RUNNING, RUNNING, WAITING]
    clock.advance(1)
    sched.finish(first)
    assert third.state == RUNNING and third.started_at == 1
    assert sched.stats().max_concurrent == {"llama3.2": 2}


def test_slots_are_granted_first_come_first_served(clock):
    sched = scheduler(clock)
    records = [sched.submit("llama3.2") for _ in range(4)]
    for record in records:
        clock.advance(1)
        sched.finish(record)
    assert [record.started_at for record in records] == [0, 1, 2, 3]
    assert [record.state for record in records] == [FINISHED] * 4


def test_requests_needing_a_load_are_served_in_arrival_order(clock):
    sched = scheduler(clock, max_loaded_models=1)
    busy = sched.submit("llama3.2")
    qwen = sched.submit("qwen3:8b")
    minilm = sched.submit("all-minilm")
    assert sched.pending == [qwen, minilm]
    sched.finish(busy)
    assert (qwen.state, minilm.state) == (RUNNING, PENDING)
    sched.finish(qwen)
    assert minilm.state == RUNNING
    assert [runner.model for runner in sched.unloaded] == ["llama3.2", "qwen3:8b"]
    assert sched.stats().evictions == 2


def test_a_request_matching_the_loaded_runner_goes_ahead_of_the_fifo(clock):
    sched = scheduler(clock, num_parallel=2, max_loaded_models=1)
    first = sched.submit("llama3.2")
    blocked = sched.submit("qwen3:8b")
    later = sched.submit("llama3.2")  # getRunner hands it the loaded runner without queueing
    assert (blocked.state, later.state) == (PENDING, RUNNING)
    sched.finish(first)
    sched.finish(later)
    assert blocked.state == RUNNING


def test_loading_takes_its_time_and_shows_in_load_seconds(clock):
    sched = scheduler(clock, load_seconds=2.0)
    first = sched.submit("llama3.2")
    clock.advance(0.5)
    joining = sched.submit("llama3.2", ctx(4096))  # same options as the auto default: joins the load
    assert states(first, joining) == [WAITING, WAITING]
    assert sched.next_deadline() == 2.0
    clock.advance(1.5)
    assert sched.next_deadline() == 2.0  # passed, and still due until the model is settled
    sched.settle()
    assert sched.next_deadline() is None
    assert first.state == RUNNING and (first.loaded_at, first.load_seconds) == (2.0, 2.0)
    assert joining.state == WAITING and joining.load_seconds == 1.5  # loaded, waiting for the one slot
    sched.finish(first)
    warm = sched.submit("llama3.2")
    assert warm.load_seconds == 0
    assert sched.stats().loads == 1


def test_another_num_ctx_reloads_once_the_runner_is_idle(clock):
    sched = scheduler(clock, num_parallel=2, load_seconds=1.0)
    small = sched.submit("llama3.2", ctx(2048))
    clock.advance(1)
    sched.settle()
    big = sched.submit("llama3.2", ctx(8192))
    assert big.state == PENDING and sched.loaded()[0].context_length == 2048
    clock.advance(1)
    sched.finish(small)
    assert big.state == WAITING and sched.loaded()[0].context_length == 8192
    clock.advance(1)
    sched.settle()
    assert big.state == RUNNING and big.load_seconds == 2.0
    assert sched.runner_of(small) is not sched.runner_of(big)
    assert sched.runner_of(small).unload_reason == "reload"
    stats = sched.stats()
    assert (stats.loads, stats.reloads, stats.evictions) == (2, 1, 0)


def test_equal_options_share_the_runner(clock):
    sched = scheduler(clock, num_parallel=4)
    records = [sched.submit("llama3.2", ctx(2048)), sched.submit("llama3.2", ctx(2048)),
               sched.submit("llama3.2", RunnerOptions(num_ctx=2048, num_ctx_auto=False, num_gpu=-1))]
    assert states(*records) == [RUNNING] * 3
    assert len({record.runner_id for record in records}) == 1
    assert (sched.stats().loads, sched.stats().reloads) == (1, 0)


@pytest.mark.parametrize(("loaded", "wanted", "reloads"), [
    (RunnerOptions(), RunnerOptions(), False),
    (RunnerOptions(), RunnerOptions(num_ctx=9999), False),  # both automatic: Ollama keeps the runner's
    (RunnerOptions(), ctx(4096), False),
    (RunnerOptions(), ctx(8192), True),
    (ctx(8192), RunnerOptions(), True),  # a request without num_ctx wants the default
    (ctx(2048), ctx(2048), False),
    (RunnerOptions(num_gpu=20), RunnerOptions(), False),  # num_gpu -1: any runner will do
    (RunnerOptions(), RunnerOptions(num_gpu=20), True),
    (RunnerOptions(), RunnerOptions(num_batch=1024, num_batch_auto=False), True),
    (RunnerOptions(), RunnerOptions(main_gpu=1), True),
    (RunnerOptions(), RunnerOptions(use_mmap=False), True),
    (RunnerOptions(), RunnerOptions(num_thread=8), True),
    (RunnerOptions(), RunnerOptions(draft_num_predict=8), True),
])
def test_reload_is_needed_when_a_runner_option_differs(loaded, wanted, reloads):
    assert loaded.reload_needed_for(wanted) is reloads


def test_a_full_server_evicts_an_idle_runner_by_keep_alive_then_name(clock):
    sched = scheduler(clock, max_loaded_models=2)
    for model, keep_alive in (("qwen3:8b", 600), ("llama3.2", 600)):
        sched.finish(sched.submit(model, keep_alive=keep_alive))
    sched.finish(sched.submit("all-minilm"))  # evicts llama3.2: same keep_alive, first by name
    assert sorted(runner.model for runner in sched.loaded()) == ["all-minilm", "qwen3:8b"]
    sched.finish(sched.submit("llava", keep_alive=900))  # evicts all-minilm: the shortest keep_alive
    assert sorted(runner.model for runner in sched.loaded()) == ["llava", "qwen3:8b"]
    assert sched.stats().evictions == 2


def test_a_full_busy_server_makes_the_new_model_wait_for_a_runner_to_finish(clock):
    sched = scheduler(clock, max_loaded_models=2)
    llama, qwen = sched.submit("llama3.2"), sched.submit("qwen3:8b")
    minilm = sched.submit("all-minilm")
    clock.advance(3)
    assert minilm.state == PENDING
    sched.finish(qwen)  # llama3.2 was picked (first by name) and is still busy
    assert minilm.state == PENDING and "qwen3:8b" in sched.runners
    clock.advance(1)
    sched.finish(llama)
    assert minilm.state == RUNNING and minilm.load_seconds == 4
    assert sorted(sched.runners) == ["all-minilm", "qwen3:8b"]


def test_a_waiter_whose_client_leaves_is_dropped_and_never_started(clock):
    sched = scheduler(clock)
    running = sched.submit("llama3.2")
    waiter = sched.submit("llama3.2")
    clock.advance(1)
    sched.cancel(waiter)
    clock.advance(1)
    sched.finish(running)
    assert waiter.state == DROPPED and waiter.started_at is None and waiter.left_at == 1
    assert sched.stats().dropped == 1 and sched.stats().started_after_client_left == 0


def test_a_waiter_that_left_unnoticed_is_dropped_when_its_slot_comes(clock):
    sched = scheduler(clock)
    there = {"client": True}
    running = sched.submit("llama3.2")
    waiter = sched.submit("llama3.2", present=lambda: there["client"])
    there["client"] = False
    sched.finish(running)
    assert waiter.state == DROPPED and waiter.started_at is None


def test_a_queued_request_whose_client_leaves_never_loads_its_model(clock):
    sched = scheduler(clock, max_loaded_models=1)
    running = sched.submit("llama3.2")
    queued = sched.submit("qwen3:8b")
    sched.cancel(queued)
    sched.finish(running)
    assert queued.state == DROPPED and sched.pending == []
    assert sched.stats().loads == 1


def test_a_cancelled_request_frees_its_slot_at_once(clock):
    sched = scheduler(clock)
    running = sched.submit("llama3.2")
    waiter = sched.submit("llama3.2")
    clock.advance(2)
    sched.cancel(running)
    assert (running.state, running.finished_at, waiter.state, waiter.started_at) == (CANCELLED, 2, RUNNING, 2)


def test_a_start_after_the_client_left_is_counted(clock):
    sched = scheduler(clock)
    clock.advance(1)
    record = sched.submit("llama3.2")
    clock.advance(1)
    sched.cancel(record, left_at=0.5)  # the client had gone before the slot was granted
    later = sched.submit("llama3.2")
    clock.advance(1)
    sched.cancel(later, left_at=2.5)
    assert sched.stats().started_after_client_left == 1 and sched.stats().cancelled == 2


def test_keep_alive_zero_unloads_as_soon_as_idle(clock):
    sched = scheduler(clock)
    record = sched.submit("llama3.2", keep_alive=0)
    assert [runner.model for runner in sched.loaded()] == ["llama3.2"]
    sched.finish(record)
    assert sched.loaded() == [] and sched.stats().expiries == 1


def test_idle_runners_expire_after_keep_alive_and_busy_ones_never(clock):
    sched = scheduler(clock, keep_alive=300)
    sched.finish(sched.submit("llama3.2"))
    busy = sched.submit("qwen3:8b", keep_alive=10)
    sched.finish(sched.submit("llava", keep_alive=-1))
    clock.advance(299.9)
    assert sorted(runner.model for runner in sched.loaded()) == ["llama3.2", "llava", "qwen3:8b"]
    assert sched.next_deadline() == 300
    clock.advance(0.1)
    assert sorted(runner.model for runner in sched.loaded()) == ["llava", "qwen3:8b"]
    clock.advance(10_000)
    sched.finish(busy)
    assert sched.runners["qwen3:8b"].expires_at == clock.now + 10


def test_unload_waits_for_the_runner_to_be_idle(clock):
    sched = scheduler(clock)
    record = sched.submit("llama3.2")
    sched.unload("llama3.2")
    assert "llama3.2" in sched.runners
    sched.finish(record)
    assert sched.runners == {}


def test_a_load_only_request_needs_no_slot(clock):
    sched = scheduler(clock, load_seconds=1)
    running = sched.submit("llama3.2")
    loader = sched.submit("llama3.2", needs_slot=False)
    clock.advance(1)
    sched.settle()
    assert (running.state, loader.state, loader.load_seconds) == (RUNNING, READY, 1)
    sched.finish(loader)
    assert loader.state == FINISHED and running.state == RUNNING


def test_a_full_fifo_rejects_at_once(clock):
    sched = scheduler(clock, max_loaded_models=1, max_queue=1)
    sched.submit("llama3.2")
    head, queued, refused = (sched.submit(model) for model in ("qwen3:8b", "llava", "all-minilm"))
    assert states(head, queued, refused) == [PENDING, PENDING, REJECTED]
    assert sched.stats().rejected == 1


def test_each_runner_has_its_own_slots(clock):
    sched = scheduler(clock, num_parallel=1)
    embedder = [sched.submit("all-minilm", parallel=1) for _ in range(2)]
    chatter = [sched.submit("llama3.2", parallel=3) for _ in range(3)]
    assert states(*embedder) == [RUNNING, WAITING]
    assert states(*chatter) == [RUNNING] * 3
