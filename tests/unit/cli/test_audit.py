"""``ollama-proxy audit``: the trail as a table, JSON or CSV, from a time ago; the CLI's changes name its user."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.cli import main
from ollama_proxy.cli.audit import since
from ollama_proxy.cli.operator import operator

UTC = timezone.utc
NOW = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, moment", [
    ("30m", NOW - timedelta(minutes=30)), ("24h", NOW - timedelta(hours=24)), ("7d", NOW - timedelta(days=7)),
    ("2w", NOW - timedelta(weeks=2)), ("2027-01-02", datetime(2027, 1, 2, tzinfo=UTC)),
    ("2027-01-02T08:30", datetime(2027, 1, 2, 8, 30, tzinfo=UTC)),
])
def test_since_reads_a_time_ago_a_date_or_a_time(text, moment):
    assert since(text, now=NOW) == moment


def test_the_operator_is_the_os_user_behind_sudo_at_the_host_and_over_ssh():
    plain = operator({})
    assert plain.kind == "cli" and plain.name and plain.origin
    behind = operator({"SUDO_USER": "ann", "SSH_CONNECTION": "10.0.0.9 50022 10.0.0.1 22"})
    assert behind.name == f"ann (as {plain.name})" and behind.origin == f"{plain.origin}, ssh from 10.0.0.9"
    assert operator({"OLLAMA_PROXY_OPERATOR": "ann"}).name == f"ann (as {plain.name})"  # the VM's command


def run(config: str, *args: str) -> int:
    return main([*args, "--config", config])


def test_the_keys_commands_changes_are_listed_as_a_table_json_and_csv(store_config, capsys):
    assert run(store_config, "audit") == 0
    assert capsys.readouterr().out.strip() == "no entries"
    assert run(store_config, "keys", "create", "--name", "alice", "--rpm", "60") == 0
    secret = capsys.readouterr().out.splitlines()[-1]
    assert run(store_config, "keys", "disable", "alice") == 0
    assert run(store_config, "keys", "delete", "alice") == 0
    capsys.readouterr()
    who = operator()

    assert run(store_config, "audit", "--since", "1h") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["when", "who", "from", "action", "target", "change"] and len(lines) == 4
    assert f"{who.name} (cli)" in lines[1] and "key.create" in lines[1] and '"rpm":60' in lines[1]
    assert "key.update" in lines[2] and "enabled: true -> false" in lines[2]
    assert "key.delete" in lines[3]

    assert run(store_config, "audit", "--format", "json") == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in entries] == ["key.create", "key.update", "key.delete"]
    assert {(e["actor"], e["actor_kind"], e["origin"]) for e in entries} == {(who.name, "cli", who.origin)}
    assert entries[1]["before"] == {"enabled": True} and entries[1]["after"] == {"enabled": False}

    assert run(store_config, "audit", "--format", "csv", "--limit", "2") == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["action"] for r in rows] == ["key.update", "key.delete"]  # the newest two, oldest first
    assert json.loads(rows[0]["after"]) == {"enabled": False} and rows[1]["after"] == ""
    assert secret[12:] not in out


def test_a_store_that_cannot_be_opened_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(f"store: {{url: 'sqlite:///{tmp_path}'}}\nlogging: {{dir: '{tmp_path}'}}\n")  # a directory
    assert main(["audit", "--config", str(path)]) == 1
    assert capsys.readouterr().err.startswith("ollama-proxy audit: ")


def test_names_from_people_and_the_identity_provider_print_as_escapes_not_as_terminal_commands(store_config, capsys):
    from ollama_proxy.config import load_settings
    from ollama_proxy.store import Actor, open_store

    hostile = "eve\x1b[2J\x1b[31m\nwhen  root (cli)  forged\u202eevil"
    store = open_store(load_settings(store_config).store)
    store.create_team("research", by=Actor(hostile, "oidc", "10.0.0.9"))
    store.close()
    for form in ("table", "csv", "json"):
        assert run(store_config, "audit", "--format", form) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\u202e" not in out, form
        assert len(out.strip().splitlines()) == 2 or form == "json", form  # a header and one row: none forged
    assert run(store_config, "audit") == 0
    assert "eve\\x1b[2J\\x1b[31m\\x0awhen  root (cli)  forged\\u202eevil" in capsys.readouterr().out
