"""Reading the export's dates; writing rows as CSV and JSON."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.cli.usage import COLUMNS, since, write

UTC = timezone.utc


@pytest.mark.parametrize("text, moment", [
    ("2026-11-22", datetime(2026, 11, 22, tzinfo=UTC)),
    ("2026-11-22T08:30:00", datetime(2026, 11, 22, 8, 30, tzinfo=UTC)),
    ("2026-11-22T08:30:00+02:00", datetime(2026, 11, 22, 8, 30, tzinfo=timezone(timedelta(hours=2)))),
])
def test_since(text, moment):
    assert since(text) == moment


def test_since_refuses_what_is_not_a_date():
    with pytest.raises(argparse.ArgumentTypeError, match="not a date"):
        since("yesterday")


ROW = {"id": 7, "ts": datetime(2026, 11, 22, 8, 30, 1, 250000, tzinfo=UTC), "request_id": "r7",
       "key_name": "alice", "surface": "openai", "model": "llama3.2", "backend": "default",
       "upstream_model": "llama3.2:latest", "prompt_tokens": 12, "completion_tokens": 30,
       "duration_ms": 812.5, "ttft_ms": 120.0, "status": 200, "aborted": False, "cached_tokens": 3990,
       "team": "research", "gpu_seconds": 0.75, "queue_ms": 40.5, "measured": True, "key_id": 3, "team_id": 1,
       "cached_tokens_estimated": 3900}


def test_csv_has_a_header_and_one_line_per_row():
    out = io.StringIO()
    write([ROW, {**ROW, "id": 8, "prompt_tokens": None}], "csv", out)
    lines = out.getvalue().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    # New columns go last (the key's and team's ids, 0016; the scheduler's cache estimate, 0018): the others stay.
    assert lines[1] == ("7,2026-11-22T08:30:01.250Z,r7,alice,openai,llama3.2,default,llama3.2:latest,12,30,"
                        "812.5,120.0,200,False,3990,research,0.75,40.5,True,3,1,3900")
    assert lines[2].split(",")[8] == ""  # unknown counts stay empty, not 0


def test_json_is_one_array_with_every_column():
    out = io.StringIO()
    write([ROW], "json", out)
    assert json.loads(out.getvalue()) == [{**ROW, "ts": "2026-11-22T08:30:01.250Z"}]
    out = io.StringIO()
    write([], "json", out)
    assert json.loads(out.getvalue()) == []


def test_csv_cells_that_would_be_formulas_are_written_as_text_and_json_as_it_is():
    hostile = {**ROW, "key_name": "=cmd|' /C calc'!A0", "model": "@SUM(1+1)", "prompt_tokens": 12}
    out = io.StringIO()
    write([hostile], "csv", out)
    line = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert (line["key_name"], line["model"], line["prompt_tokens"]) == ("'=cmd|' /C calc'!A0", "'@SUM(1+1)", "12")
    out = io.StringIO()
    write([hostile], "json", out)
    assert json.loads(out.getvalue())[0]["key_name"] == "=cmd|' /C calc'!A0"


def test_the_end_user_column_comes_last_when_asked_for():
    named = {**ROW, "key_name": "webui", "end_user": "ann@lan"}
    out = io.StringIO()
    write([named, ROW], "csv", out, (*COLUMNS, "end_user"))
    lines = out.getvalue().splitlines()
    assert lines[0] == ",".join(COLUMNS) + ",end_user"
    assert lines[1].endswith(",3990,research,0.75,40.5,True,3,1,3900,ann@lan")
    assert lines[2].endswith(",3990,research,0.75,40.5,True,3,1,3900,")
    out = io.StringIO()
    write([named], "csv", out)
    assert "ann@lan" not in out.getvalue()  # the default export keeps its columns
    out = io.StringIO()
    write([named], "json", out, (*COLUMNS, "end_user"))
    assert json.loads(out.getvalue())[0]["end_user"] == "ann@lan"


def test_the_export_filters_by_end_user(tmp_path, capsys):
    from ollama_proxy.cli import main
    from ollama_proxy.config import StoreSettings
    from ollama_proxy.store import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "config.yaml").write_text(f"store: {{url: '{url}'}}\nlogging: {{dir: '{tmp_path}'}}\n")
    store = open_store(StoreSettings(url, 5.0))
    moment = ROW["ts"]
    store.add_usage([{"ts": moment, "request_id": "a", "key_name": "webui", "end_user": "ann"},
                     {"ts": moment, "request_id": "b", "key_name": "webui", "end_user": "bob"},
                     {"ts": moment, "request_id": "c", "key_name": "webui"}])
    store.close()
    config = ["--config", str(tmp_path / "config.yaml")]
    assert main(["usage", *config, "--end-user", "ann", "--format", "json"]) == 0
    assert [(row["request_id"], "end_user" in row) for row in json.loads(capsys.readouterr().out)] == [("a", False)]
    assert main(["usage", *config, "--with-end-user"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(row["request_id"], row["end_user"]) for row in rows] == [("a", "ann"), ("b", "bob"), ("c", "")]


def _report_store(config_path: str) -> None:
    from ollama_proxy.config import load_settings
    from ollama_proxy.store import open_store
    from tests.actors import TESTER

    store = open_store(load_settings(config_path).store)
    research = store.create_team("research", by=TESTER).id  # its rows carry its id, as they are written now
    store.create_team("idle", by=TESTER)
    store.set_budget("team", "research", period="month", unit="gpu_seconds", amount=3600, by=TESTER)
    store.set_budget("team", "idle", period="month", unit="tokens", amount=500, mode="soft", by=TESTER)
    november, october = datetime(2026, 11, 5, 9, tzinfo=UTC), datetime(2026, 10, 30, 9, tzinfo=UTC)
    store.add_usage([
        {"ts": november, "key_name": "alice", "team": "research", "prompt_tokens": 10, "completion_tokens": 20,
         "gpu_seconds": 1.25, "ttft_ms": 100.0, "queue_ms": 0.0, "status": 200, "team_id": research},
        {"ts": november, "key_name": "bob", "team": "research", "prompt_tokens": 5, "completion_tokens": 5,
         "gpu_seconds": 0.75, "ttft_ms": 300.0, "queue_ms": 2000.0, "status": 200, "team_id": research},
        {"ts": november, "key_name": "script", "model": "qwen3:8b", "prompt_tokens": 1, "completion_tokens": 1,
         "status": 500},
        {"ts": october, "key_name": "alice", "team": "research", "prompt_tokens": 99, "status": 200,
         "team_id": research}])
    store.close()


def test_the_report_sums_a_period_per_team_with_its_budgets(store_config, capsys):
    from ollama_proxy.cli import main

    _report_store(store_config)
    assert main(["usage", "--config", store_config, "--by", "team", "--period", "month", "--at", "2026-11-20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "month 2026-11: 2026-11-01T00:00:00+00:00 to 2026-12-01T00:00:00+00:00"
    assert lines[1].split() == ["team", "requests", "tokens", "gpu-seconds", "errors", "ttft", "p50", "ms", "ttft",
                                "p95", "ms", "queue", "p95", "ms", "budget", "(spent/amount)"]
    assert lines[2].split() == ["research", "2", "40", "2.0", "0", "100.0", "300.0", "2,000.0", "0/3,600",
                                "gpu-seconds", "(hard)"]  # spent: what was charged, none in this store
    assert lines[3].split() == ["(none)", "1", "2", "0.0", "1", "-", "-", "-", "-"]
    assert lines[4].split() == ["idle", "0", "0", "0.0", "0", "-", "-", "-", "0/500", "tokens", "(soft)"]
    assert lines[5].split() == ["total", "3", "42", "2.0", "1", "100.0", "300.0", "2,000.0"]


def test_the_report_as_csv_and_json_and_for_one_team(store_config, capsys):
    from ollama_proxy.cli import main

    _report_store(store_config)
    config = ["--config", store_config, "--at", "2026-11-05"]
    assert main(["usage", *config, "--by", "key", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["key"], r["tokens"], r["gpu_seconds"]) for r in rows] == [("alice", "30", "1.25"), ("bob", "10", "0.75"),
                                                                         ("script", "2", "0.0")]
    assert main(["usage", *config, "--by", "model", "--period", "month", "--team", "research", "--format",
                 "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(line["name"], line["requests"]) for line in report["lines"]] == [("(none)", 2)]  # script's not in it
    assert main(["usage", *config, "--period", "month", "--at", "2026-10-01", "--format", "json"]) == 0
    assert [(line["name"], line["tokens"]) for line in json.loads(capsys.readouterr().out)["lines"]] == [("alice", 99)]


@pytest.mark.parametrize("arguments, says", [
    (["--by", "team", "--key", "alice"], "not the export's filters"),
    (["--period", "day", "--since", "2026-11-01"], "not the export's filters"),
    (["--format", "table"], "--format table is the report's"),
])
def test_the_report_and_the_export_do_not_mix(store_config, capsys, arguments, says):
    from ollama_proxy.cli import main

    assert main(["usage", "--config", store_config, *arguments]) == 2
    assert says in capsys.readouterr().err


def test_the_export_piped_into_head_stops_quietly(tmp_path):
    import subprocess
    import sys

    from ollama_proxy.config import StoreSettings
    from ollama_proxy.store import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "config.yaml").write_text(f"store: {{url: '{url}'}}\nlogging: {{dir: '{tmp_path}'}}\n")
    store = open_store(StoreSettings(url, 5.0))
    store.add_usage([{"ts": ROW["ts"], "request_id": f"r{n}", "key_name": "alice"} for n in range(5000)])
    store.close()
    command = f"{sys.executable} -m ollama_proxy.cli usage --config {tmp_path / 'config.yaml'} | head -n 2"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[0] == ",".join(COLUMNS)
    assert done.stderr == ""  # no BrokenPipeError traceback
    assert done.returncode == 141  # as a command stopped by SIGPIPE
