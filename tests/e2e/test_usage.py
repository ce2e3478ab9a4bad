"""Usage rows through the real server: one per request answered, none lost when it stops."""

from __future__ import annotations

import csv
import http.client
import io
import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import anthropic
import ollama
import openai
import requests

from ollama_proxy.cli.usage import COLUMNS
from tests.e2e.admin_page import PASSWORD, admin_config, csrf_token
from tests.e2e.command import cli, create_key
from tests.e2e.conftest import ALICE, GENERATE, auth, base_config
from tests.e2e.server import wait_for

REQUESTS = 48
CHUNK_DELAY = 0.3  # a stream lasts about 3 s: long enough to be cut by the SIGTERM if it were


def ask(port: int, n: int) -> tuple[str, int, bytes]:
    """Send request ``n`` (a mix of surfaces, streams among them); return its id, status and body."""
    kind = n % 4
    path, body = [
        ("/api/chat", {"model": "llama3.2", "messages": [{"role": "user", "content": f"native {n}"}]}),
        ("/v1/chat/completions", {"model": "llama3.2", "stream": True,
                                  "messages": [{"role": "user", "content": f"openai {n}"}]}),
        ("/api/generate", {"model": "llama3.2", "prompt": f"whole {n}", "stream": False}),
        ("/v1/messages", {"model": "llama3.2", "max_tokens": 50, "stream": True,
                          "messages": [{"role": "user", "content": f"anthropic {n}"}]}),
    ][kind]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        request_id = f"usage-{n}"
        headers = {**auth(ALICE if n % 2 else GENERATE), "X-Request-Id": request_id,
                   "Content-Type": "application/json"}
        connection.request("POST", path, json.dumps(body), headers)
        answer = connection.getresponse()
        return request_id, answer.status, answer.read()
    finally:
        connection.close()


def test_sigterm_with_requests_in_flight_loses_no_usage_row(start_proxy, fake):
    fake.script("llama3.2:latest", chunk_delay=CHUNK_DELAY)
    config = base_config(fake.url)
    # Nothing is written before the worker exits: every row must come from the exit flush.
    config["usage"] = {"flush_interval": 3600, "batch_size": 100000}
    proxy = start_proxy(config, workers=2)
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        futures = [pool.submit(ask, proxy.port, n) for n in range(REQUESTS)]
        deadline = time.monotonic() + 30
        while len(fake.requests) < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake.requests) >= REQUESTS, f"only {len(fake.requests)} requests reached the upstream in 30 s"
        proxy.signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        answers = [future.result() for future in futures]
    assert proxy.process.wait(60) == 0, proxy.stderr()[-2000:]
    answered = {request_id for request_id, status, body in answers if status == 200 and body}
    assert len(answered) == REQUESTS, [a[:2] for a in answers]  # graceful: what was in flight was finished
    store = proxy.open_store()
    rows = store.query_usage(limit=None)
    store.close()
    print(f"{REQUESTS} requests ({REQUESTS // 2} streams) in flight at SIGTERM; the server stopped "
          f"{time.monotonic() - stopped_at:.1f}s later; {len(rows)} usage rows")
    assert sorted(row["request_id"] for row in rows) == sorted(answered), proxy.stderr()[-2000:]
    by_id = {row["request_id"]: row for row in rows}
    assert {by_id[f"usage-{n}"]["surface"] for n in range(4)} == {"native", "openai", "anthropic"}
    assert all(row["completion_tokens"] and row["prompt_tokens"] for row in rows), rows[0]
    assert {row["key_name"] for row in rows} == {"alice", "generate#0"}
    assert all(row["status"] == 200 and row["aborted"] is False and row["backend"] for row in rows)


def export(proxy, *args: str) -> str:
    """Run the installed ``ollama-proxy usage`` command; return what it printed."""
    done = cli(proxy, "usage", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_usage_export_as_csv_and_json_with_filters(start_proxy, fake):
    config = base_config(fake.url)
    config["usage"] = {"flush_interval": 0.1}
    proxy = start_proxy(config)
    with ollama.Client(host=proxy.url, headers=auth(ALICE)) as client:
        list(client.chat(model="llama3.2", messages=[{"role": "user", "content": "streamed"}], stream=True))
        client.generate(model="llama3.2", prompt="whole")
    with ollama.Client(host=proxy.url, headers=auth(GENERATE)) as client:
        client.embed(model="llama3.2", input="vector")
    store = proxy.open_store()
    deadline = time.monotonic() + 10
    while len(store.query_usage()) < 3:
        assert time.monotonic() < deadline, "the usage rows were not written"
        time.sleep(0.1)
    store.close()

    rows = list(csv.DictReader(io.StringIO(export(proxy, "--key", "alice"))))
    assert [(r["key_name"], r["surface"], r["status"]) for r in rows] == [("alice", "native", "200")] * 2
    assert int(rows[0]["prompt_tokens"]) > 0 and int(rows[0]["completion_tokens"]) > 0
    assert rows[0]["ts"].endswith("Z") and rows[0]["ts"] <= rows[1]["ts"]

    everything = json.loads(export(proxy, "--format", "json", "--model", "llama3.2"))
    assert [row["key_name"] for row in everything] == ["alice", "alice", "generate#0"]
    assert everything[2]["aborted"] is False and everything[2]["duration_ms"] > 0
    today = datetime.now(timezone.utc).date()
    assert len(json.loads(export(proxy, "--format", "json", "--since", str(today)))) == 3
    assert json.loads(export(proxy, "--format", "json", "--until", str(today - timedelta(days=1)))) == []
    assert export(proxy, "--key", "nobody").splitlines() == [",".join(COLUMNS)]


def _ask_every_surface(proxy, name: str, secret: str) -> None:
    """Send one request per surface with key ``secret``, each naming an end user as its clients do."""
    said = [{"role": "user", "content": "hello"}]
    headers = {**auth(secret), "X-OpenWebUI-User-Email": "ann@lan", "X-Request-Id": f"{name}-native"}
    with ollama.Client(host=proxy.url, headers=headers) as client:
        client.chat(model="llama3.2", messages=said)
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=secret, max_retries=0) as client:
        client.chat.completions.create(model="llama3.2", messages=said, user="bob",
                                       extra_headers={"X-Request-Id": f"{name}-openai"})
        client.embeddings.create(model="llama3.2", input="vector", user="bob",
                                 extra_headers={"X-Request-Id": f"{name}-embeddings"})
    with anthropic.Anthropic(base_url=proxy.url, api_key=secret, max_retries=0) as client:
        client.messages.create(model="llama3.2", max_tokens=50, messages=said, metadata={"user_id": "cy"},
                               extra_headers={"X-Request-Id": f"{name}-anthropic"})


def test_a_trusted_front_ends_usage_rows_name_its_end_users_and_another_keys_do_not(start_proxy, fake):
    config = base_config(fake.url)
    config["usage"] = {"flush_interval": 0.1}
    proxy = start_proxy(config)
    for name, options in (("webui", ["--trusted-frontend"]), ("script", [])):
        _ask_every_surface(proxy, name, create_key(proxy, "--name", name, *options))
    store = proxy.open_store()
    assert wait_for(lambda: len(store.query_usage()) == 8), store.query_usage()
    named = {row["request_id"]: row["end_user"] for row in store.query_usage()}
    store.close()
    assert named == {"webui-native": "ann@lan", "webui-openai": "bob", "webui-embeddings": "bob",
                     "webui-anthropic": "cy", "script-native": None, "script-openai": None,
                     "script-embeddings": None, "script-anthropic": None}

    rows = list(csv.DictReader(io.StringIO(export(proxy, "--key", "webui", "--with-end-user"))))
    assert [row["end_user"] for row in rows] == ["ann@lan", "bob", "bob", "cy"]
    assert list(rows[0])[-1] == "end_user"
    bobs = json.loads(export(proxy, "--end-user", "bob", "--format", "json"))
    assert [row["request_id"] for row in bobs] == ["webui-openai", "webui-embeddings"]
    assert proxy.access_entry("webui-anthropic")["end_user"] == "cy"
    assert "end_user" not in proxy.access_entry("script-anthropic")


def _report_rows(text: str) -> dict:
    return {row["team"]: row for row in csv.DictReader(io.StringIO(text))}


def test_the_usage_report_gives_the_same_figures_on_the_page_and_the_cli(start_proxy, fake, tmp_path):
    """A team's two people at once on one slot, and a key of no team: GPU time, queue waits, the budget beside."""
    fake.script("llama3.2:latest", chunk_delay=0.05)
    config = admin_config(fake.url, tmp_path)
    config["service"].update(scheduling=True, num_parallel=1, max_loaded_models=1)
    config["usage"] = {"flush_interval": 0.1}
    proxy = start_proxy(config, workers=2)
    assert cli(proxy, "teams", "create", "research").returncode == 0
    secrets = {name: create_key(proxy, "--name", name, *(["--team", "research"] if name != "solo" else []))
               for name in ("ann", "bob", "solo")}
    budget = cli(proxy, "budgets", "set", "--team", "research", "--period", "month", "--gpu-seconds", "3600")
    assert budget.returncode == 0, budget.stderr

    def chat(name: str) -> None:
        with ollama.Client(host=proxy.url, headers=auth(secrets[name])) as client:
            client.chat(model="llama3.2", messages=[{"role": "user", "content": f"{name} asks a few words"}])
    with ThreadPoolExecutor(max_workers=7) as pool:
        list(pool.map(chat, ["ann", "bob"] * 3 + ["solo"]))
    store = proxy.open_store()
    assert wait_for(lambda: len(store.query_usage()) == 7), store.query_usage()
    rows = store.query_usage()
    store.close()
    research = [row for row in rows if row["team"] == "research"]
    assert len(research) == 6 and all(row["gpu_seconds"] > 0 for row in rows)
    assert max(row["queue_ms"] for row in rows) > 100  # seven at once on one slot: most of them waited

    listed = cli(proxy, "usage", "--by", "team", "--period", "month", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    lines = {line["name"]: line for line in json.loads(listed.stdout)["lines"]}
    team = lines["research"]
    assert team["requests"] == 6 and team["tokens"] == sum(r["prompt_tokens"] + r["completion_tokens"]
                                                           for r in research)
    assert team["gpu_seconds"] == round(sum(row["gpu_seconds"] for row in research), 3)
    assert team["queue_p95_ms"] == max(row["queue_ms"] for row in research)  # 6 requests: p95 is the longest
    (charged,) = team["budgets"]
    assert (charged["unit"], charged["amount"]) == ("gpu_seconds", 3600.0)
    assert abs(charged["spent"] - team["gpu_seconds"]) < 0.01  # what the budget was charged is what was used
    assert lines["(none)"]["requests"] == 1
    by_key = cli(proxy, "usage", "--by", "key", "--team", "research", "--format", "json")
    assert sorted(line["name"] for line in json.loads(by_key.stdout)["lines"]) == ["ann", "bob"]

    browser = requests.Session()
    token = csrf_token(browser, proxy.url)
    signed = browser.post(proxy.url + "/admin/login", data={"username": "admin", "password": PASSWORD,
                                                            "csrf_token": token}, allow_redirects=False, timeout=30)
    assert signed.status_code == 302
    page = browser.get(proxy.url + "/admin/usage/report?by=team&period=month", timeout=30).text
    assert f"{team['gpu_seconds']:,.1f}" in page and "of 3600 gpu-seconds" in page
    exported = browser.get(proxy.url + "/admin/usage/report.csv?by=team&period=month", timeout=30).text
    printed = cli(proxy, "usage", "--by", "team", "--period", "month", "--format", "csv").stdout
    assert _report_rows(exported) == _report_rows(printed) and "research" in _report_rows(printed)
