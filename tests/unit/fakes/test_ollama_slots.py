"""Tests of the fake Ollama running requests in slots, driven over HTTP by concurrent clients."""

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fakes.ollama import FakeOllama
from tests.fakes.ollama_runner import CANCELLED, DROPPED, FINISHED, RunnerOptions
from tests.fakes.ollama_slots import keep_alive_seconds, runner_options


def chat_body(**fields):
    return {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], **fields}


def timed_chat(fake, body):
    """Stream a chat; return when its headers came (seconds from the call) and its chunks."""
    began = time.monotonic()
    with requests.post(fake.url + "/api/chat", json=body, stream=True, timeout=10) as response:
        headers_after = time.monotonic() - began
        chunks = [json.loads(line) for line in response.iter_lines()]
    return headers_after, chunks


def running_models(fake):
    return requests.get(fake.url + "/api/ps", timeout=5).json()["models"]


def send_then_hang_up(fake, body):
    """Send a chat request on a raw socket and return the socket, to be closed unanswered."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", int(fake.url.rsplit(":", 1)[1])))
    sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return sock


def test_two_slots_admit_two_and_the_third_waits_for_one_to_finish():
    with FakeOllama(num_parallel=2) as fake:
        fake.script("llama3.2", reply="one two three four five", chunk_delay=0.2)  # 1 s an answer
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: timed_chat(fake, chat_body()), range(3)))
        records = fake.scheduler.records()
    quick, quick_too, late = sorted(headers_after for headers_after, _ in answers)
    assert quick_too < 0.6 and late > 0.9, (quick, quick_too, late)  # headers only once a slot is held
    assert all(chunks[-1]["done"] for _, chunks in answers)
    first_end = min(record.finished_at for record in records)
    assert sorted(record.started_at for record in records)[-1] >= first_end
    assert fake.scheduler.stats().max_concurrent == {"llama3.2:latest": 2}
    assert [record.state for record in records] == [FINISHED] * 3
    assert all(r.queued_at <= r.loaded_at <= r.started_at <= r.first_token_at <= r.finished_at for r in records)


def test_a_waiter_whose_client_hangs_up_is_never_started():
    with FakeOllama(num_parallel=1) as fake:
        fake.script("llama3.2", reply="word " * 10, chunk_delay=0.05)
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(timed_chat, fake, chat_body())
            fake.wait_for(lambda: len(fake.scheduler.records()) == 1)
            waiter = send_then_hang_up(fake, chat_body())
            fake.wait_for(lambda: len(fake.scheduler.records()) == 2)
            waiter.close()
            closed = time.monotonic()
            running.result()
        fake.wait_for(lambda: [record.state for record in fake.scheduler.records()] == [FINISHED, DROPPED])
        gone = fake.scheduler.records()[1]
        assert gone.started_at is None and gone.left_at - closed < 0.2
        assert len(fake.streams) == 1  # nothing was streamed to it
        stats = fake.scheduler.stats()
        assert (stats.dropped, stats.started_after_client_left, stats.finished) == (1, 0, 1)


def test_a_client_leaving_mid_stream_frees_the_slot_for_the_next():
    with FakeOllama(num_parallel=1) as fake:
        fake.script("llama3.2", reply="word " * 100, chunk_delay=0.02)
        leaving = send_then_hang_up(fake, chat_body())
        leaving.settimeout(10)
        assert leaving.recv(65536).startswith(b"HTTP/1.1 200")  # the stream has begun
        leaving.close()  # gone now: not whenever a client library gets round to closing its socket
        headers_after, chunks = timed_chat(fake, chat_body(messages=[{"role": "user", "content": "x"}]))
        left, served = fake.scheduler.records()
    assert left.state == CANCELLED and served.state == FINISHED and chunks[-1]["done"]
    assert headers_after < 1.0  # not the two seconds the abandoned stream had left


def test_each_record_keeps_the_request_it_came_as():
    with FakeOllama(num_parallel=1) as fake:
        fake.script("llama3.2", reply="ok", chunk_delay=0.02)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda said: timed_chat(fake, chat_body(messages=[{"role": "user", "content": said}])),
                          ["first", "second"]))
        records = fake.scheduler.records()
    asked = {record.origin.json["messages"][0]["content"]: record for record in records}
    assert set(asked) == {"first", "second"}
    assert all(record.origin in fake.requests and record.origin.path == "/api/chat" for record in records)
    assert asked["first"].started_at != asked["second"].started_at


def test_another_num_ctx_reloads_the_model_and_ps_shows_the_context():
    with FakeOllama(num_parallel=1, load_seconds=0.3) as fake:
        def generate(num_ctx):
            body = {"model": "llama3.2", "prompt": "hi", "stream": False, "options": {"num_ctx": num_ctx}}
            return requests.post(fake.url + "/api/generate", json=body, timeout=10).json()

        cold, warm = generate(2048), generate(2048)
        assert cold["load_duration"] >= 0.3e9 and warm["load_duration"] < 0.1e9
        assert [(m["name"], m["context_length"]) for m in running_models(fake)] == [("llama3.2:latest", 2048)]
        reloaded = generate(8192)
        assert reloaded["load_duration"] >= 0.3e9
        assert [(m["name"], m["context_length"]) for m in running_models(fake)] == [("llama3.2:latest", 8192)]
        stats = fake.scheduler.stats()
        assert (stats.loads, stats.reloads) == (2, 1)


def test_ps_lists_runners_longest_to_live_first_and_a_full_server_evicts():
    with FakeOllama(num_parallel=1, max_loaded_models=2) as fake:
        loads = (("/api/generate", "llama3.2", "1h"), ("/api/chat", "qwen3:8b", 60),
                 ("/api/embed", "all-minilm", "10m"))
        for path, model, keep_alive in loads:  # no prompt, messages or input: each only loads its model
            answer = requests.post(fake.url + path, json={"model": model, "keep_alive": keep_alive}, timeout=5)
            assert answer.status_code == 200
        models = running_models(fake)
        assert [(m["name"], m["context_length"]) for m in models] == [("llama3.2:latest", 4096),
                                                                      ("all-minilm:latest", 512)]
        assert fake.scheduler.stats().evictions == 1  # qwen3:8b, the shortest keep_alive
        requests.post(fake.url + "/api/generate", json={"model": "llama3.2", "keep_alive": 0}, timeout=5)
        assert [m["name"] for m in running_models(fake)] == ["all-minilm:latest"]


def test_loading_delays_the_headers_and_shows_in_load_duration():
    with FakeOllama(num_parallel=1, load_seconds=0.05) as fake:
        fake.script("llama3.2", load_seconds=0.4)
        headers_after, chunks = timed_chat(fake, chat_body())
    assert headers_after >= 0.4
    assert 0.4e9 <= chunks[-1]["load_duration"] < 1e9
    assert chunks[-1]["total_duration"] >= chunks[-1]["load_duration"]


def test_embedding_models_get_one_slot():
    with FakeOllama(num_parallel=4) as fake:
        fake.script("all-minilm", chunk_delay=0.2)

        def embed(_):
            body = {"model": "all-minilm", "input": "sky"}
            return requests.post(fake.url + "/api/embed", json=body, timeout=10).json()

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(embed, range(2)))
        assert all(len(answer["embeddings"]) == 1 for answer in answers)
        assert fake.scheduler.stats().max_concurrent == {"all-minilm:latest": 1}


def test_a_full_queue_answers_503():
    with FakeOllama(num_parallel=1, max_loaded_models=1, max_queue=0) as fake:
        fake.script("llama3.2", reply="word " * 10, chunk_delay=0.05)
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(timed_chat, fake, chat_body())
            fake.wait_for(lambda: len(fake.scheduler.records()) == 1)
            head = pool.submit(timed_chat, fake, chat_body(model="qwen3:8b"))
            fake.wait_for(lambda: len(fake.scheduler.pending()) == 1)
            refused = requests.post(fake.url + "/api/chat", json=chat_body(model="llava"), timeout=5)
            running.result(), head.result()
    assert refused.status_code == 503
    assert refused.json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}


def test_without_num_parallel_nothing_is_scheduled():
    with FakeOllama() as fake:
        requests.post(fake.url + "/api/generate", json={"model": "llama3.2"}, timeout=5)
        assert fake.scheduler is None and fake.loaded == {"llama3.2:latest"}


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), (0, 0.0), ("0", 0.0), (30, 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5s", 1.5),
    ("500ms", 0.5), (-1, float("inf")), ("-1m", float("inf")), ("soon", None), ("300", None), (True, None),
])
def test_keep_alive_is_read_as_ollama_reads_it(value, seconds):
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize(("options", "expected"), [
    (None, RunnerOptions()),
    ({"num_ctx": 2048.0}, RunnerOptions(num_ctx=2048, num_ctx_auto=False)),
    ({"num_ctx": 1_000_000}, RunnerOptions(num_ctx=131072, num_ctx_auto=False)),  # the model's context at most
    ({"num_ctx": 1}, RunnerOptions(num_ctx=4, num_ctx_auto=False)),
    ({"num_gpu": 0, "use_mmap": False, "num_batch": 256}, RunnerOptions(num_gpu=0, use_mmap=False, num_batch=256,
                                                                        num_batch_auto=False)),
    ({"num_thread": True, "temperature": 0.1}, RunnerOptions()),  # not a number; not a load option
])
def test_load_options_are_read_from_the_request_options(options, expected):
    assert runner_options(options, default_num_ctx=4096, context_limit=131072) == expected


def chat_turns(*said):
    """Return a conversation's messages: what the user said, each answered "ok sure" but the last."""
    answered = [[{"role": "user", "content": text}, {"role": "assistant", "content": "ok sure"}] for text in said]
    return [message for turn in answered for message in turn][:-1]


def test_a_prompt_cache_spares_a_conversation_its_earlier_turns_and_keeps_one_pushed_out_in_ram():
    # Per token read: enough that a prompt of ~90 tokens read takes clearly longer than one of 25.
    per_token = 0.01
    with FakeOllama(num_parallel=2, prompt_cache=True, prompt_token_seconds=per_token, reports_cached=True) as fake:
        fake.script("llama3.2", reply="ok sure")
        essay = {name: f"{name} " + "tell me about the history of the sky " * 10 for name in "ABC"}

        def turn(*said):
            began = time.monotonic()
            *_, done = timed_chat(fake, chat_body(messages=chat_turns(*said)))[1]
            took, record = time.monotonic() - began, fake.scheduler.records()[-1]
            fake.wait_for(lambda: record.finished_at is not None)  # the slot is freed once the response closes
            return done, took, record

        first, first_took, first_record = turn(essay["A"])
        second, second_took, second_record = turn(essay["A"], "and then?")
        assert first["prompt_eval_count"] == first_record.prompt_tokens > 80
        assert first["prompt_eval_cached_count"] == first_record.cached_tokens == 0
        assert second_record.cached_tokens == first_record.prompt_tokens + 2  # the prompt and "ok sure"
        # every token counted, those read from cache too; read again: the answer's <|im_end|>, <|im_start|>user
        # and "and then?", <|im_end|>, <|im_start|>assistant
        assert second["prompt_eval_count"] == second_record.prompt_tokens
        assert second["prompt_eval_cached_count"] == second_record.cached_tokens
        assert second_record.prompt_tokens - second_record.cached_tokens == 25
        # the reading measured, as llama-server reports it: 25 tokens' worth alone (the whole prompt: over 90)
        assert 25 * per_token * 1e9 <= second["prompt_eval_duration"] < 60 * per_token * 1e9
        assert second["total_duration"] >= second["prompt_eval_duration"] + second["eval_duration"]
        assert second_took < first_took - 0.2
        assert fake.cache_slots("llama3.2") == [(0, False), (second_record.prompt_tokens + 2, False)]

        assert turn(essay["B"])[2].cache_slot == 0  # the empty slot, never used
        assert turn(essay["C"])[2].cache_slot == 1  # A's slot, used longest ago: A's prompt saved to RAM first
        still_cached = turn(essay["B"], "and then?")[2]
        from_ram = turn(essay["A"], "and then?", "why?")[2]
    assert (still_cached.cache_slot, still_cached.cached_tokens) == (0, first_record.prompt_tokens + 2)
    assert from_ram.cached_tokens == second_record.prompt_tokens + 2


def test_a_client_leaving_mid_answer_leaves_its_cache_slot_with_what_was_processed():
    with FakeOllama(num_parallel=1, prompt_cache=True) as fake:
        fake.script("llama3.2", reply="word " * 100, chunk_delay=0.02)
        with requests.post(fake.url + "/api/chat", json=chat_body(), stream=True, timeout=10) as response:
            next(response.iter_lines())
        fake.wait_for(lambda: fake.scheduler.records()[0].state == CANCELLED)
        record = fake.scheduler.records()[0]
        [(held, in_use)] = fake.cache_slots("llama3.2")
    assert not in_use and record.prompt_tokens < held < record.prompt_tokens + 100


def test_a_prompt_cache_needs_slots():
    with pytest.raises(ValueError, match="num_parallel"):
        FakeOllama(prompt_cache=True)


def test_a_chat_longer_than_the_context_loses_its_first_messages_but_its_system_ones():
    """As server/prompt.go's chatPrompt: what is read, and kept in the slot, is the system prompt and the latest
    turns that fit ``num_ctx``."""
    system = {"role": "system", "content": "be brief"}
    with FakeOllama(num_parallel=1, prompt_cache=True, default_num_ctx=64) as fake:
        fake.script("llama3.2", reply="ok sure")
        messages = [system, *chat_turns("tell me about the history of the sky " * 10, "and then?")]
        *_, done = timed_chat(fake, chat_body(messages=messages))[1]
        cut = [system, *messages[2:]]  # the long question dropped: its answer and the rest fit
        *_, alone = timed_chat(fake, chat_body(model="llama3.2", messages=cut))[1]
    assert done["prompt_eval_count"] == alone["prompt_eval_count"] < 64
