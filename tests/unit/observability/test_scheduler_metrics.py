"""The scheduler's queue and slots as gauges, from the state its arbiter answers with."""

from prometheus_client.parser import text_string_to_metric_families

from ollama_proxy.observability.scheduler_metrics import exposition, queue_depths

STATE = {
    "servers": [
        {"name": "gpu1", "slots": 2, "busy": 2, "num_parallel": 2, "max_loaded_models": 1,
         "models": [{"model": "llama3.2:latest", "options": {"num_ctx": 8192}, "busy": 2, "slots": 2, "lent": 0,
                     "reserved": False}]},
        {"name": "gpu2", "slots": 4, "busy": 1, "num_parallel": 2, "max_loaded_models": 2,
         "models": [{"model": "llama3.2:latest", "options": {}, "busy": 0, "slots": 2, "lent": 1, "reserved": False},
                    {"model": "qwen3:8b", "options": {}, "busy": 1, "slots": 2, "lent": 0, "reserved": False}]},
    ],
    "running": [],  # the gauges read the servers' counts
    "waiting": [
        {"principal": "a", "class": "interactive", "weight": 1.0, "model": "llama3.2:latest", "asked": {},
         "waited": 1.0, "servers": ["gpu1", "gpu2"]},
        {"principal": "b", "class": "batch", "weight": 1.0, "model": "llama3.2:latest", "asked": {},
         "waited": 2.0, "servers": ["gpu1"]},
        {"principal": "c", "class": "interactive", "weight": 1.0, "model": "mistral", "asked": {},
         "waited": 3.0, "servers": ["gpu2"]},
    ],
}


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_queue_depth_counts_each_waiting_request_on_every_server_it_may_run_on():
    assert queue_depths(STATE) == {("gpu1", "llama3.2:latest"): 2, ("gpu2", "llama3.2:latest"): 1,
                                   ("gpu2", "qwen3:8b"): 0, ("gpu2", "mistral"): 1}


def test_the_gauges_show_the_queue_the_slots_and_the_busy_and_lent_slots():
    found = samples(exposition(STATE))
    assert found[("ollama_proxy_scheduler_up", ())] == 1
    assert found[("ollama_proxy_scheduler_queue_depth", (("model", "llama3.2:latest"), ("server", "gpu1")))] == 2
    assert found[("ollama_proxy_scheduler_queue_depth", (("model", "mistral"), ("server", "gpu2")))] == 1
    assert found[("ollama_proxy_scheduler_slots", (("server", "gpu1"),))] == 2
    assert found[("ollama_proxy_scheduler_slots", (("server", "gpu2"),))] == 4
    assert found[("ollama_proxy_scheduler_slots_busy", (("model", "llama3.2:latest"), ("server", "gpu1")))] == 2
    assert found[("ollama_proxy_scheduler_slots_busy", (("model", "qwen3:8b"), ("server", "gpu2")))] == 1
    assert found[("ollama_proxy_scheduler_slots_lent", (("model", "llama3.2:latest"), ("server", "gpu2")))] == 1
    assert found[("ollama_proxy_scheduler_slots_lent", (("model", "qwen3:8b"), ("server", "gpu2")))] == 0


def test_the_help_says_what_the_queue_depth_counts():
    text = exposition(STATE).decode()
    assert "# HELP ollama_proxy_scheduler_queue_depth Requests waiting now that may run on this server" in text
    assert "counts on each of them" in text


def test_a_scheduler_that_did_not_answer_shows_up_0_and_nothing_else():
    assert samples(exposition(None)) == {("ollama_proxy_scheduler_up", ()): 0}


def test_the_prompt_cache_hits_the_mirror_predicted_and_the_answers_confirmed_are_counters_per_server_and_model():
    hits = {"predicted": 40, "confirmed": 38, "surprises": 1, "predicted_tokens": 152000, "confirmed_tokens": 149500,
            "reliability": 0.96}
    state = {**STATE, "prompt_cache": [{"server": "gpu1", "model": "llama3.2:latest", **hits}]}
    found = samples(exposition(state))
    labels = (("model", "llama3.2:latest"), ("server", "gpu1"))
    assert found[("ollama_proxy_prompt_cache_predicted_hits_total", labels)] == 40
    assert found[("ollama_proxy_prompt_cache_confirmed_hits_total", labels)] == 38
    assert found[("ollama_proxy_prompt_cache_predicted_tokens_total", labels)] == 152000
    assert found[("ollama_proxy_prompt_cache_confirmed_tokens_total", labels)] == 149500
    assert not any(name.startswith("ollama_proxy_prompt_cache") for name, _ in samples(exposition(STATE)))
