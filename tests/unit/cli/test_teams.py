"""``ollama-proxy teams``: create, list (table and JSON), edit, delete; keys join with ``keys create --team``."""

from __future__ import annotations

import json

import pytest

from ollama_proxy.cli import main


def run(config: str, *args: str) -> int:
    return main([*args, "--config", config])


def test_a_team_is_made_listed_edited_and_deleted_once_its_keys_are_gone(store_config, capsys):
    assert run(store_config, "teams", "create", "research", "--weight", "2", "--class", "batch",
               "--models", "qwen3*", "llama3*", "--rpm", "600") == 0
    assert capsys.readouterr().out.strip() == ("created team 'research': weight 2, class batch, models qwen3*, "
                                               "llama3*, rpm 600, tpm - (its keys together)")
    assert run(store_config, "keys", "create", "--name", "alice", "--team", "research") == 0
    assert "team research" in capsys.readouterr().out
    assert run(store_config, "keys", "create", "--name", "bob", "--team", "nowhere") == 1
    assert "no team named 'nowhere'" in capsys.readouterr().err

    assert run(store_config, "teams", "list") == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["name", "weight", "class", "models", "limits", "keys"]
    assert row.split()[:3] == ["research", "2", "batch"] and row.endswith("alice")
    assert run(store_config, "teams", "list", "--format", "json") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert {k: listed[k] for k in ("name", "weight", "class", "models", "rpm", "tpm", "keys")} == {
        "name": "research", "weight": 2.0, "class": "batch", "models": ["qwen3*", "llama3*"], "rpm": 600,
        "tpm": None, "keys": ["alice"]}

    assert run(store_config, "teams", "edit", "research", "--rpm", "none", "--tpm", "5000", "--models", "*") == 0
    assert "models *, rpm -, tpm 5000" in capsys.readouterr().out
    assert run(store_config, "teams", "edit", "research") == 2
    assert "nothing to change" in capsys.readouterr().err

    assert run(store_config, "teams", "delete", "research") == 1
    assert "team 'research' still has keys: alice" in capsys.readouterr().err
    assert run(store_config, "keys", "delete", "alice") == 0
    assert run(store_config, "teams", "delete", "research") == 0
    capsys.readouterr()
    assert run(store_config, "teams", "list") == 0 and capsys.readouterr().out.strip() == "no teams"
    assert run(store_config, "audit", "--format", "json") == 0
    actions = [entry["action"] for entry in json.loads(capsys.readouterr().out)]
    assert actions == ["team.create", "key.create", "team.update", "key.delete", "team.delete"]


@pytest.mark.parametrize("args", [["--weight", "0"], ["--class", "urgent"], ["--rpm", "-3"], ["--rpm", "none"]])
def test_nonsense_on_the_command_line_is_refused_before_the_store(store_config, capsys, args):
    with pytest.raises(SystemExit):
        run(store_config, "teams", "create", "lab", *args)
    assert run(store_config, "teams", "list") == 0 and "no teams" in capsys.readouterr().out
