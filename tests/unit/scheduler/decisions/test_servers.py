from ollama_proxy.scheduler.decisions.servers import Loaded, Placement, ServerSlots, ServerSpec, Start


def _server(**spec) -> ServerSlots:
    return ServerSlots(ServerSpec("gpu1", **spec))


def test_a_loaded_model_starts_warm_until_its_slots_are_full():
    server = _server(num_parallel=2)
    server.warm("m", Loaded({"num_ctx": 4096}))
    for _ in range(2):
        placement = server.placement("m", {"num_ctx": 2048})
        assert placement == Placement("gpu1", Start.WARM, {"num_ctx": 4096})
        server.begin("m", placement, now=0)
    assert server.placement("m", {}) is None and server.free_slots("m") == 0
    server.end("m", now=1)
    assert server.free_slots("m") == 1


def test_a_model_loads_beside_others_then_in_place_of_the_least_recently_used_idle_one():
    server = _server(max_loaded_models=2)
    server.warm("a", Loaded({})).last_used = 5
    server.warm("b", Loaded({})).last_used = 3
    assert server.placement("c", {"num_ctx": 2048}) == Placement("gpu1", Start.LOAD, {"num_ctx": 2048}, evict="b")
    server.runners["b"].running = 1
    assert server.placement("c", {}).evict == "a"
    server.runners["a"].running = 1
    assert server.placement("c", {}) is None  # every loaded model is busy: Ollama would queue it
    server.begin("c", Placement("gpu1", Start.LOAD, {}, evict=None), now=9)
    assert set(server.runners) == {"a", "b", "c"}


def test_a_larger_context_reloads_only_an_idle_runner_and_only_for_the_request_holding_it():
    server = _server(num_parallel=2)
    server.warm("m", Loaded({"num_ctx": 2048})).running = 1
    assert server.placement("m", {"num_ctx": 8192}) is None
    server.runners["m"].running = 0
    server.runners["m"].reserved_by = "t1"
    assert server.placement("m", {"num_ctx": 8192}, ticket="t2") is None
    assert server.placement("m", {}, ticket="t2") is None  # held back while it waits to reload
    assert server.placement("m", {"num_ctx": 8192}, ticket="t1") == Placement("gpu1", Start.RELOAD, {"num_ctx": 8192})


def test_max_concurrent_caps_all_models_together():
    server = _server(num_parallel=4, max_concurrent=3)
    server.warm("a", Loaded({})).running = 2
    server.warm("b", Loaded({})).running = 1
    assert server.placement("a", {}) is None and server.placement("c", {}) is None and server.free_slots("b") == 0


def test_what_the_server_reports_loaded_replaces_the_view_but_keeps_requests_in_flight():
    server = _server()
    server.warm("a", Loaded({"num_ctx": 2048})).running = 1
    server.warm("b", Loaded({}))
    server.loaded({"c": Loaded({"num_ctx": 4096}), "a": Loaded({"num_ctx": 8192})})
    assert set(server.runners) == {"a", "c"}
    assert server.runners["a"].running == 1 and server.runners["a"].options == {"num_ctx": 8192}


def test_a_listing_read_before_the_proxy_swapped_the_model_does_not_bring_the_old_one_back():
    """/api/ps said qwen3; meanwhile the proxy evicted it for llava, which runs: the server holds one model."""
    state = ServerSlots(ServerSpec("gpu1", num_parallel=2, max_loaded_models=1))
    state.loaded({"qwen3:8b": Loaded({"num_ctx": 4096})})
    state.begin("llava:latest", Placement("gpu1", Start.LOAD, {"num_ctx": 4096}, evict="qwen3:8b"), 1.0)
    state.loaded({"qwen3:8b": Loaded({"num_ctx": 4096})})  # the listing read before that
    assert set(state.runners) == {"llava:latest"} and state.runners["llava:latest"].running == 1
    assert state.placement("qwen3:8b", {}) is None  # no slot for it beside the busy llava


def test_a_listing_refreshes_the_busy_runners_options_and_adds_what_fits():
    state = ServerSlots(ServerSpec("gpu1", num_parallel=2, max_loaded_models=2))
    state.begin("llava:latest", Placement("gpu1", Start.LOAD, {}), 1.0)
    state.loaded({"llava:latest": Loaded({"num_ctx": 8192}), "qwen3:8b": Loaded({"num_ctx": 4096}),
                  "llama3.2:latest": Loaded({})})
    assert list(state.runners) == ["llava:latest", "qwen3:8b"]
    assert state.runners["llava:latest"].options == {"num_ctx": 8192} and state.runners["llava:latest"].running == 1


def test_an_embedding_model_and_the_architectures_ollama_runs_alone_have_one_slot():
    state = ServerSlots(ServerSpec("gpu1", num_parallel=4, model_parallel=(("qwen3:32b", 2),)))
    state.loaded({"nomic-embed-text:latest": Loaded({}, one_slot=True), "llama3.2:latest": Loaded({}),
                  "qwen3:32b": Loaded({})})
    assert [state.slots_of(m) for m in ("nomic-embed-text:latest", "llama3.2:latest", "qwen3:32b")] == [1, 4, 2]
    state.begin("bge-m3:latest", Placement("gpu1", Start.LOAD, {}), 1.0, embeds=True)  # before /api/ps says
    assert state.slots_of("bge-m3:latest") == 1 and state.free_slots("bge-m3:latest") == 0
    assert state.runners["qwen3:32b"].caches.slot_count == 2


def test_the_ram_prompt_cache_holds_as_many_tokens_as_its_mib_hold_of_the_models_keys_and_values():
    state = ServerSlots(ServerSpec("gpu1", num_parallel=2, prompt_cache_mib=8192))
    state.loaded({"m": Loaded({}, kv_bytes=128 * 1024)})
    assert state.runners["m"].caches.ram_tokens == 65_536
    state.loaded({"m": Loaded({}, kv_bytes=32 * 1024)})
    assert state.runners["m"].caches.ram_tokens == 4 * 65_536


def test_a_model_loads_with_the_largest_context_asked_for_it_here_sent_to_every_request():
    server = _server(num_parallel=2)
    server.warm("m", Loaded({"num_ctx": 2048})).running = 1
    assert server.placement("m", {"num_ctx": 8192}) is None  # waits for the runner to drain; remembered
    server.runners.clear()  # the model unloads
    assert server.placement("m", {"num_ctx": 2048}) == Placement("gpu1", Start.LOAD, {"num_ctx": 8192})
    assert server.placement("m", {}) == Placement("gpu1", Start.LOAD, {"num_ctx": 8192})
    assert server.placement("other", {}) == Placement("gpu1", Start.LOAD, {})  # per model
    enforced = server.placement("m", {"num_ctx": 1024}, enforced=frozenset({"num_ctx"}))
    assert enforced.options == {"num_ctx": 1024} and server.asked["m"] == {"num_ctx": 8192}


def test_a_runner_ollama_loaded_with_its_default_is_shared_by_requests_asking_none_until_ps_says_its_size():
    server = _server(num_parallel=2)
    server.begin("m", Placement("gpu1", Start.LOAD, {}), now=0)  # sent without num_ctx: Ollama's default
    assert server.placement("m", {}) == Placement("gpu1", Start.WARM, {})
    server.loaded({"m": Loaded({"num_ctx": 4096})})
    assert server.placement("m", {"num_ctx": 2048}) == Placement("gpu1", Start.WARM, {"num_ctx": 4096})
