import time

import pytest

from ollama_proxy.app import create_app
from ollama_proxy.config import MetricsSettings, parse_settings
from ollama_proxy.ledger import RequestRecord
from ollama_proxy.observability.metric_labels import ModelLabels
from ollama_proxy.observability.metrics import UNMATCHED, ProxyMetrics
from ollama_proxy.scheduler.decisions.servers import Placement, Start


def record(**fields) -> RequestRecord:
    base = {"request_id": "r", "method": "POST", "path": "/api/chat", "client": "127.0.0.1",
            "started": time.perf_counter() - 0.2, "status": 200}
    return RequestRecord(**{**base, **fields})


LISTED = frozenset({"llama3.2:latest", "m:latest", "lab:gpt-4o"})  # the models the backends list


def listing(*names: str) -> ModelLabels:
    """Labels of the models ``LISTED``, and of ``names`` once the backends are read again."""
    return ModelLabels(LISTED.__contains__, lambda: names, 10.0, providers={"lab"}, start=lambda read: read())


def observed(key_names: bool = False, **fields) -> ProxyMetrics:
    metrics = ProxyMetrics(MetricsSettings(enabled=True, tokens=(), key_names=key_names), listing())
    metrics.observe(record(**fields))
    return metrics


def sample(metrics: ProxyMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize("fields, labels", [
    ({"surface": "native", "endpoint": "/api/chat"},
     {"surface": "native", "endpoint": "/api/chat", "method": "POST", "status": "200"}),
    ({"surface": "openai", "endpoint": "/v1/models/<path:model_id>", "method": "GET", "path": "/v1/models/x",
      "status": 404},
     {"surface": "openai", "endpoint": "/v1/models/<path:model_id>", "method": "GET", "status": "404"}),
    ({"surface": "other", "path": "/wp-login.php", "method": "GET", "status": 401},
     {"surface": "other", "endpoint": UNMATCHED, "method": "GET", "status": "401"}),
])
def test_requests_are_counted_by_route_template_never_raw_path(fields, labels):
    metrics = observed(**fields)
    assert sample(metrics, "ollama_proxy_requests_total", **labels) == 1
    text = metrics.exposition().decode()
    assert "/v1/models/x" not in text and "/wp-login.php" not in text


def test_duration_is_observed_in_the_surface_and_route_histogram():
    metrics = observed(surface="native", endpoint="/api/chat")
    labels = {"surface": "native", "endpoint": "/api/chat"}
    assert sample(metrics, "ollama_proxy_request_duration_seconds_count", **labels) == 1
    assert 0.2 <= sample(metrics, "ollama_proxy_request_duration_seconds_sum", **labels) < 5
    assert sample(metrics, "ollama_proxy_request_duration_seconds_bucket", le="0.1", **labels) == 0


def test_time_to_first_token_by_surface_and_upstream_model():
    started = time.perf_counter() - 1.0
    metrics = observed(surface="openai", started=started, first_token=started + 0.3, model="fast",
                       upstream_model="llama3.2:latest")
    labels = {"surface": "openai", "model": "llama3.2:latest"}
    assert sample(metrics, "ollama_proxy_time_to_first_token_seconds_count", **labels) == 1
    assert sample(metrics, "ollama_proxy_time_to_first_token_seconds_sum", **labels) == pytest.approx(0.3)


@pytest.mark.parametrize("fields, waited, left", [
    ({"queue_class": "interactive", "queued": 1.5}, {"interactive": 1}, 0),
    ({"queue_class": "batch", "queued": 1.5}, {"batch": 1}, 0),
    # Granted, then its client left while Ollama prepared the first token: it waited, and was sent.
    ({"queue_class": "interactive", "queued": 1.5, "status": 499}, {"interactive": 1}, 0),
    ({"queue_class": "batch", "queued": 1.5, "status": 499, "left_in_queue": True}, {}, 1),  # dropped unsent
    ({"status": 499}, {}, 0),  # never scheduled
])
def test_queue_waits_are_observed_per_class_and_clients_that_left_in_the_queue_counted(fields, waited, left):
    metrics = observed(**fields)
    for klass in ("interactive", "batch"):
        count = sample(metrics, "ollama_proxy_queue_wait_seconds_count", **{"class": klass})
        assert (count or 0) == waited.get(klass, 0), klass
    assert sample(metrics, "ollama_proxy_scheduler_client_left_total") == left


def test_no_first_token_no_observation():
    metrics = observed(surface="native", model="llama3.2")
    assert sample(metrics, "ollama_proxy_time_to_first_token_seconds_count", surface="native",
                  model="llama3.2:latest") is None


@pytest.mark.parametrize("key_names, key", [(False, ""), (True, "alice")])
def test_tokens_by_model_and_key_name_only_when_asked(key_names, key):
    metrics = observed(key_names, model="llama3.2", principal="alice", prompt_tokens=12, counted_tokens=30,
                       provisional_tokens=2)
    assert sample(metrics, "ollama_proxy_prompt_tokens_total", model="llama3.2:latest", key=key) == 12
    assert sample(metrics, "ollama_proxy_completion_tokens_total", model="llama3.2:latest", key=key) == 32
    assert ("alice" in metrics.exposition().decode()) is key_names


def test_the_prompt_tokens_a_server_said_it_read_from_cache_and_again_are_counted_by_model_and_server():
    metrics = observed(model="fast", upstream_model="llama3.2:latest", backend="gpu1", principal="alice",
                       prompt_tokens=4300, cached_tokens=3990)
    labels = {"model": "llama3.2:latest", "server": "gpu1"}
    assert sample(metrics, "ollama_proxy_prompt_cached_tokens_total", **labels) == 3990
    assert sample(metrics, "ollama_proxy_prompt_prefilled_tokens_total", **labels) == 310
    assert "alice" not in metrics.exposition().decode()


def test_where_the_server_did_not_say_what_it_read_from_cache_nothing_is_counted():
    metrics = observed(upstream_model="llama3.2:latest", backend="gpu1", prompt_tokens=310, cached_tokens=None)
    labels = {"model": "llama3.2:latest", "server": "gpu1"}
    assert sample(metrics, "ollama_proxy_prompt_cached_tokens_total", **labels) is None
    assert sample(metrics, "ollama_proxy_prompt_prefilled_tokens_total", **labels) is None


@pytest.mark.parametrize("told", [None, 3990])  # Ollama 0.33 does not say; one that would
def test_the_schedulers_estimate_of_the_cached_prompt_is_counted_apart_from_what_the_server_said(told):
    metrics = observed(upstream_model="llama3.2:latest", backend="gpu1", prompt_tokens=4300, cached_tokens=told,
                       cached_tokens_estimated=3900)
    labels = {"model": "llama3.2:latest", "server": "gpu1"}
    assert sample(metrics, "ollama_proxy_prompt_cached_tokens_estimated_total", **labels) == 3900
    assert sample(metrics, "ollama_proxy_prompt_cached_tokens_total", **labels) == told


@pytest.mark.parametrize("estimated", [None, 0])
def test_no_estimate_or_an_estimate_of_none_cached_counts_nothing(estimated):
    metrics = observed(upstream_model="llama3.2:latest", backend="gpu1", prompt_tokens=4300,
                       cached_tokens_estimated=estimated)
    assert "ollama_proxy_prompt_cached_tokens_estimated_total{" not in metrics.exposition().decode()


def test_a_request_without_tokens_counts_none():
    metrics = observed(model="llama3.2", prompt_tokens=None, counted_tokens=None)
    assert "ollama_proxy_prompt_tokens_total{" not in metrics.exposition().decode()


@pytest.mark.parametrize("fields, counted", [
    ({"backend": "gpu1", "status": 502}, {"backend": "gpu1", "status": "502"}),
    ({"backend": "deepseek", "status": 504}, {"backend": "deepseek", "status": "504"}),
    ({"backend": "gpu1", "status": 404}, None),  # the model is missing: the upstream did its job
    ({"backend": None, "status": 500}, None),  # never reached a backend: not an upstream error
])
def test_upstream_errors_by_backend(fields, counted):
    metrics = observed(**fields)
    text = metrics.exposition().decode()
    if counted is None:
        assert "ollama_proxy_upstream_errors_total{" not in text
    else:
        assert sample(metrics, "ollama_proxy_upstream_errors_total", **counted) == 1


@pytest.fixture
def app(tmp_path):
    return create_app(parse_settings({
        "logging": {"dir": str(tmp_path / "logs")},
        "store": {"url": f"sqlite:///{tmp_path}/store.db"},
        "auth": {"generate_tokens": ["gen"], "manage_tokens": ["man"]},
        "metrics": {"tokens": [{"name": "prometheus", "token": "scrape"}]}}, environ={}))


@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"Authorization": "Bearer gen"}, 403),
    ({"Authorization": "Bearer man"}, 200),
    ({"Authorization": "Bearer scrape"}, 200),
])
def test_who_may_read_metrics(app, headers, status):
    answer = app.test_client().get("/metrics", headers=headers)
    assert answer.status_code == status
    if status == 200:
        assert answer.content_type.startswith("text/plain")
        assert b"ollama_proxy_requests_in_flight" in answer.data


def test_a_metrics_token_may_read_nothing_else(app):
    assert app.test_client().get("/api/tags", headers={"Authorization": "Bearer scrape"}).status_code == 403


def test_each_closed_request_is_counted_and_in_flight_comes_back_to_the_scrape_alone(app):
    client = app.test_client()
    client.get("/nowhere", headers={"Authorization": "Bearer man"}).close()
    text = client.get("/metrics", headers={"Authorization": "Bearer man"}).get_data(as_text=True)
    assert 'ollama_proxy_requests_total{endpoint="unmatched",method="GET",status="404",surface="other"} 1.0' in text
    assert "ollama_proxy_requests_in_flight 1.0" in text  # the scrape itself


def test_disabled_metrics_answer_404(tmp_path):
    app = create_app(parse_settings({"logging": {"dir": str(tmp_path)}, "store": {"url": f"sqlite:///{tmp_path}/s.db"},
                                     "auth": {"manage_tokens": ["man"]}, "metrics": {"enabled": False}}, environ={}))
    assert app.test_client().get("/metrics", headers={"Authorization": "Bearer man"}).status_code == 404


@pytest.mark.parametrize("start, options, asked, counted", [
    (Start.LOAD, {"num_ctx": 4096}, {"num_ctx": 4096}, ("ollama_proxy_scheduler_loads_total", {"kind": "load"})),
    (Start.RELOAD, {"num_ctx": 8192}, {"num_ctx": 8192},
     ("ollama_proxy_scheduler_loads_total", {"kind": "reload"})),
    (Start.WARM, {"num_ctx": 8192}, {"num_ctx": 2048}, ("ollama_proxy_scheduler_reloads_avoided_total", {})),
    (Start.WARM, {"num_ctx": 8192}, {}, ("ollama_proxy_scheduler_reloads_avoided_total", {})),
    (Start.WARM, {"num_ctx": 8192}, {"num_ctx": 8192}, None),  # sent as asked: nothing was spared
])
def test_loads_started_and_reloads_spared_are_counted_by_server(start, options, asked, counted):
    metrics = ProxyMetrics(MetricsSettings(enabled=True, tokens=(), key_names=False))
    metrics.placed(Placement("gpu1", start, options), asked)
    text = metrics.exposition().decode()
    if counted is None:
        assert "ollama_proxy_scheduler_loads_total{" not in text
        assert "ollama_proxy_scheduler_reloads_avoided_total{" not in text
    else:
        name, labels = counted
        assert sample(metrics, name, server="gpu1", **labels) == 1


def test_a_scrape_shows_the_state_the_scheduler_answers_with():
    metrics = ProxyMetrics(MetricsSettings(enabled=True, tokens=(), key_names=False), listing())
    runner = {"model": "m", "options": {}, "busy": 1, "slots": 2, "lent": 0, "reserved": False}
    state = {"servers": [{"name": "gpu1", "slots": 2, "busy": 1, "num_parallel": 2, "max_loaded_models": 1,
                          "models": [runner]}],
             "running": [], "waiting": [{"principal": "p", "class": "batch", "weight": 1.0, "model": "m",
                                         "asked": {}, "waited": 1.0, "servers": ["gpu1"]}]}
    metrics.scheduler_status = lambda: state
    text = metrics.exposition().decode()
    assert 'ollama_proxy_scheduler_queue_depth{model="m:latest",server="gpu1"} 1.0' in text
    assert 'ollama_proxy_scheduler_slots_busy{model="m:latest",server="gpu1"} 1.0' in text
    assert "ollama_proxy_scheduler_up 1.0" in text and "ollama_proxy_requests_in_flight" in text


def test_without_a_gevent_worker_no_scheduler_runs_and_the_scrape_says_so(app):
    text = app.test_client().get("/metrics", headers={"Authorization": "Bearer man"}).get_data(as_text=True)
    assert "ollama_proxy_scheduler_up 0.0" in text
    assert "ollama_proxy_scheduler_queue_depth" not in text


def test_with_no_server_scheduled_there_is_no_scheduler_state(tmp_path):
    app = create_app(parse_settings({"logging": {"dir": str(tmp_path)}, "store": {"url": f"sqlite:///{tmp_path}/s.db"},
                                     "auth": {"manage_tokens": ["man"]}, "service": {"scheduling": False}},
                                    environ={}))
    text = app.test_client().get("/metrics", headers={"Authorization": "Bearer man"}).get_data(as_text=True)
    assert "ollama_proxy_scheduler_up" not in text


def test_a_workers_file_still_empty_is_left_out_of_the_sums(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from ollama_proxy.observability.metrics import WorkerFiles

    for pid, count in ((101, 3.0), (102, 4.0)):  # two workers' counts of one series
        written = MmapedDict(str(tmp_path / f"counter_{pid}.db"))
        written.write_value(mmap_key("demo_total", "demo_total", ["status"], ["200"], "requests"), count, 0.0)
        written.close()
    (tmp_path / "counter_103.db").touch()  # a worker that created its file and has not sized it yet
    registry = CollectorRegistry()
    registry.register(WorkerFiles(str(tmp_path)))
    assert 'demo_total{status="200"} 7.0' in generate_latest(registry).decode()


def test_made_up_methods_are_counted_as_other():
    metrics = ProxyMetrics(MetricsSettings(enabled=True, tokens=(), key_names=False), listing())
    for method in ("X000001", "X000002", "get", "PROPFIND", "GET"):
        metrics.observe(record(method=method, status=405, endpoint=None, surface="other"))
    labels = {"surface": "other", "endpoint": UNMATCHED, "status": "405"}
    assert sample(metrics, "ollama_proxy_requests_total", method="other", **labels) == 4
    assert sample(metrics, "ollama_proxy_requests_total", method="GET", **labels) == 1
    assert "X000001" not in metrics.exposition().decode()


def test_every_spelling_of_a_listed_model_is_one_label_and_a_model_no_backend_lists_is_other():
    metrics = ProxyMetrics(MetricsSettings(enabled=True, tokens=(), key_names=False), listing())
    for model in ("Llama3.2", "registry.ollama.ai/library/llama3.2", "llama3.2:LATEST", "made-up-1", "made-up-2"):
        metrics.observe(record(model=model, backend="default", prompt_tokens=1, counted_tokens=1))
    metrics.observe(record(model="lab:gpt-4o", upstream_model="gpt-4o", backend="lab", prompt_tokens=1))
    assert sample(metrics, "ollama_proxy_prompt_tokens_total", model="llama3.2:latest", key="") == 3
    assert sample(metrics, "ollama_proxy_prompt_tokens_total", model="other", key="") == 2
    assert sample(metrics, "ollama_proxy_prompt_tokens_total", model="lab:gpt-4o", key="") == 1
    text = metrics.exposition().decode()
    assert "made-up" not in text and "Llama3.2" not in text and "registry.ollama.ai" not in text


def test_the_scheduler_state_is_shown_by_label_added_up():
    metrics = ProxyMetrics(MetricsSettings(enabled=True, tokens=(), key_names=False), listing())
    runner = {"options": {}, "busy": 1, "slots": 2, "lent": 0, "reserved": False}
    waiting = {"principal": "p", "class": "batch", "weight": 1.0, "asked": {}, "waited": 1.0, "servers": ["gpu1"]}
    metrics.scheduler_status = lambda: {
        "servers": [{"name": "gpu1", "slots": 4, "busy": 2, "num_parallel": 2, "max_loaded_models": 2,
                     "models": [{**runner, "model": "llama3.2:latest"}, {**runner, "model": "made-up:1"}]}],
        "running": [], "waiting": [{**waiting, "model": name} for name in ("Llama3.2", "made-up:2", "made-up:3")]}
    text = metrics.exposition().decode()
    assert 'ollama_proxy_scheduler_queue_depth{model="llama3.2:latest",server="gpu1"} 1.0' in text
    assert 'ollama_proxy_scheduler_queue_depth{model="other",server="gpu1"} 2.0' in text
    assert 'ollama_proxy_scheduler_slots_busy{model="other",server="gpu1"} 1.0' in text
    assert "made-up" not in text
