"""A command run as root never leaves files in a store that belongs to the service's user."""

from __future__ import annotations

import os
import pwd

import pytest

from ollama_proxy.cli import main
from ollama_proxy.cli.store_access import foreign_owner, nearest_existing, sqlite_file

NOBODY = pwd.getpwnam("nobody").pw_uid


def owned_by_someone_else(path) -> str:
    """Give ``path`` to nobody when running as root; otherwise it is already this (non-root) user's."""
    if os.geteuid() == 0:
        os.chown(path, NOBODY, -1)
    return pwd.getpwuid(os.stat(path).st_uid).pw_name


@pytest.mark.parametrize("url, path", [
    ("sqlite:////var/lib/ollama-proxy/ollama-proxy.db", "/var/lib/ollama-proxy/ollama-proxy.db"),
    ("sqlite:///:memory:", None),
    ("postgresql://proxy@db/proxy", None),
])
def test_sqlite_file(url, path):
    assert sqlite_file(url) == path


def test_nearest_existing_climbs_to_a_parent(tmp_path):
    assert nearest_existing(str(tmp_path / "state" / "store.db")) == str(tmp_path)


def test_root_is_stopped_at_a_directory_of_another_user(tmp_path):
    owner = owned_by_someone_else(tmp_path)
    assert foreign_owner(str(tmp_path / "store.db"), euid=0) == owner
    assert foreign_owner(str(tmp_path / "store.db"), euid=1000) is None  # not root: the rights decide


def test_as_root_the_command_refuses_the_service_users_store_and_makes_nothing(tmp_path, monkeypatch, capsys):
    state = tmp_path / "state"
    state.mkdir()
    owner = owned_by_someone_else(state)
    config = tmp_path / "config.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{state / 'store.db'}'}}\nlogging: {{dir: '{tmp_path}'}}\n")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert main(["keys", "create", "--name", "alice", "--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert f"the store {state / 'store.db'} belongs to {owner}: run this command as {owner}" in error
    assert list(state.iterdir()) == []  # no database, lock or journal left behind


def test_a_new_store_is_said_where_it_was_made(store_config, capsys):
    assert main(["keys", "list", "--config", store_config]) == 0
    assert "made a new, empty store at" in capsys.readouterr().err
    assert main(["keys", "list", "--config", store_config]) == 0
    assert capsys.readouterr().err == ""  # once only
