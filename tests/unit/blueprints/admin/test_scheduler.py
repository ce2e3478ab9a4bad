"""The scheduler's live view: the rows it shows from the arbiter's state, and its JSON for the page's poll."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ollama_proxy.blueprints.admin.scheduler import live_view

NOW = datetime(2025, 3, 1, 12, 0, 30, tzinfo=timezone.utc).timestamp()
STATE = {
    "servers": [
        {"name": "gpu1", "slots": 2, "busy": 1, "num_parallel": 2, "max_loaded_models": 1,
         "models": [{"model": "llama3.2:latest", "options": {"num_ctx": 8192, "num_batch": 512}, "busy": 1,
                     "slots": 2, "lent": 0, "reserved": True,
                     "prompts": [
                         {"where": "slot 0", "owner": "webui/ann", "tokens": 5120, "in_use": True},
                         {"where": "slot 1", "owner": "agent-7", "tokens": 9800, "in_use": False},
                         {"where": "RAM", "owner": "nightly", "tokens": 2100, "in_use": False}]}]},
        {"name": "gpu2", "slots": 3, "busy": 0, "num_parallel": 1, "max_loaded_models": 3, "models": []},
    ],
    "running": [{"principal": "webui/ann", "class": "interactive", "weight": 1.0, "model": "llama3.2:latest",
                 "server": "gpu1", "start": "reload", "options": {"num_ctx": 8192}, "running": 30.0}],
    "waiting": [{"principal": "nightly", "class": "batch", "weight": 0.5, "model": "llama3.2:latest",
                 "asked": {"num_ctx": 16384}, "waited": 125.0, "servers": ["gpu1", "gpu2"]}],
    "prompt_cache": [{"server": "gpu1", "model": "llama3.2:latest", "predicted": 40, "confirmed": 38,
                      "surprises": 1, "predicted_tokens": 152000, "confirmed_tokens": 149500, "reliability": 0.962}],
}


def test_each_loaded_model_is_a_row_with_its_options_and_busy_slots_and_an_idle_server_says_so():
    rows = live_view(STATE, NOW)["models"]
    assert rows == [
        {"server": "gpu1", "server_busy": "1 / 2", "model": "llama3.2:latest", "options": "num_batch 512, num_ctx 8192",
         "busy": "1 / 2", "note": "draining, to reload with larger options"},
        {"server": "gpu2", "server_busy": "0 / 3", "model": "", "options": "", "busy": "", "note": "no model loaded"},
    ]


def test_the_prompts_each_server_holds_say_whose_where_and_how_long_and_the_hits_what_answers_confirmed():
    view = live_view(STATE, NOW)
    assert view["prompts"] == [
        {"server": "gpu1", "model": "llama3.2:latest", "where": "slot 0", "owner": "webui/ann", "tokens": 5120,
         "state": "in use"},
        {"server": "gpu1", "model": "llama3.2:latest", "where": "slot 1", "owner": "agent-7", "tokens": 9800,
         "state": "idle"},
        {"server": "gpu1", "model": "llama3.2:latest", "where": "RAM", "owner": "nightly", "tokens": 2100,
         "state": "idle"},
    ]
    assert view["cache"] == [{"server": "gpu1", "model": "llama3.2:latest", "hits": "38 / 40",
                              "tokens": "149500 / 152000", "surprises": 1, "reliability": "96%"}]
    older = {**STATE["servers"][0], "models": [{**STATE["servers"][0]["models"][0]}]}
    del older["models"][0]["prompts"]  # an arbiter of before prompts were shown
    older_state = {key: value for key, value in STATE.items() if key != "prompt_cache"}
    assert live_view({**older_state, "servers": [older]}, NOW)["prompts"] == []
    assert live_view(older_state, NOW)["cache"] == []


def test_who_runs_since_when_and_who_waits_how_long_in_the_order_they_go():
    view = live_view(STATE, NOW)
    assert view["running"] == [{"principal": "webui/ann", "class": "interactive", "model": "llama3.2:latest",
                                "server": "gpu1", "since": "12:00:00 UTC", "for": "30 s",
                                "start": "reloaded the model"}]
    assert view["waiting"] == [{"position": 1, "principal": "nightly", "class": "batch", "model": "llama3.2:latest",
                                "waited": "2 min 5 s", "servers": "gpu1, gpu2"}]
    assert view["ok"] and view["message"] == "" and view["at"] == "12:00:30 UTC"


@pytest.mark.parametrize("seconds, said", [(0.04, "0.0 s"), (4.25, "4.2 s"), (59.9, "59 s"), (3725, "1 h 2 min")])
def test_durations_read_at_a_glance(seconds, said):
    waiting = {**STATE["waiting"][0], "waited": seconds}
    assert live_view({**STATE, "waiting": [waiting]}, NOW)["waiting"][0]["waited"] == said


def test_a_scheduler_that_did_not_answer_gives_the_message_and_no_rows():
    view = live_view(None, NOW, message="no answer")
    assert (view["ok"], view["message"], view["models"], view["prompts"], view["cache"], view["running"],
            view["waiting"]) == (False, "no answer", [], [], [], [], [])


def test_the_json_is_the_view_of_what_the_arbiter_answers(client, app, monkeypatch):
    admission = app.extensions["ollama_proxy.dispatcher"].admission
    asked = []
    monkeypatch.setattr(admission, "status", lambda timeout: asked.append(timeout) or STATE)
    answer = client.get("/admin/scheduler.json")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert answer.json["waiting"][0]["principal"] == "nightly"
    assert asked == [app.config["SETTINGS"].scheduling.status_timeout]


def test_the_page_carries_its_first_view_and_is_in_the_navigation(client, app, monkeypatch):
    monkeypatch.setattr(app.extensions["ollama_proxy.dispatcher"].admission, "status", lambda timeout: STATE)
    page = client.get("/admin/scheduler").get_data(as_text=True)
    assert 'id="scheduler-data" data-url="/admin/scheduler.json"' in page
    assert "webui/ann" in page and 'href="/admin/scheduler"' in page
    assert 'id="scheduler-prompts"' in page and '"owner": "agent-7"' in page and '"where": "RAM"' in page
    assert 'id="scheduler-cache"' in page and '"hits": "38 / 40"' in page
    assert "scheduler.js" in page


def test_an_unanswered_question_says_which_setting_bounds_the_wait(client):
    view = client.get("/admin/scheduler.json").json  # no gevent worker in a test: no scheduler answers
    assert not view["ok"] and "scheduling.status_timeout" in view["message"]


@pytest.mark.parametrize("app_sections", [{"service": {"scheduling": False}}])
def test_with_no_server_scheduled_the_view_says_so(client):
    view = client.get("/admin/scheduler.json").json
    assert not view["ok"] and "No Ollama server is scheduled" in view["message"]


def test_strangers_get_the_login_form_not_the_state(app):
    answer = app.test_client().get("/admin/scheduler.json")
    assert answer.status_code == 302 and "/admin/login" in answer.location
