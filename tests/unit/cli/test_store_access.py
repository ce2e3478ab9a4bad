"""A command run as root never leaves files in a store that belongs to the service's user."""

from __future__ import annotations

import os
import pwd

import pytest

from ollama_proxy.cli import main
from ollama_proxy.cli.store_access import (
    SERVICE_COMMAND,
    SERVICE_ENV,
    foreign_owner,
    nearest_existing,
    service_store_note,
    sqlite_file,
)

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


SERVICE_URL = "sqlite:////var/lib/ollama-proxy/ollama-proxy.db"


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / "env"
    path.write_text(f"OLLAMA_PROXY_CONFIG=/etc/ollama-proxy/config.yaml\nOLLAMA_PROXY_STORE_URL={SERVICE_URL}\n")
    return str(path)


def test_no_note_without_a_service_installed_or_through_its_command_or_on_its_store(tmp_path, env_file):
    checkout = f"sqlite:///{tmp_path / 'ollama-proxy.db'}"
    assert service_store_note(checkout, {}, str(tmp_path / "absent")) is None
    assert service_store_note(checkout, {SERVICE_ENV: env_file}, env_file) is None
    assert service_store_note(SERVICE_URL, {}, env_file) is None


def test_a_command_on_another_store_than_the_services_says_which_and_how_to_reach_the_services(tmp_path, env_file):
    note = service_store_note(f"sqlite:///{tmp_path / 'ollama-proxy.db'}", {}, env_file)
    assert f"works on the store {tmp_path / 'ollama-proxy.db'}, not on the service's " \
           "(/var/lib/ollama-proxy/ollama-proxy.db)" in note
    assert "sudo ollama-proxy" in note and SERVICE_COMMAND in note


def test_an_unreadable_environment_file_is_named_and_a_password_never_shown(tmp_path):
    unreadable = tmp_path / "env-dir"
    unreadable.mkdir()  # a directory: open() fails as a file only root may read would
    note = service_store_note("postgresql://proxy:hunter2@db/proxy", {}, str(unreadable))
    assert "not on the one" in note and str(unreadable) in note
    assert "hunter2" not in note and "postgresql://proxy:***@db/proxy" in note


def test_the_note_is_said_every_time_a_command_opens_the_store(tmp_path, env_file, monkeypatch, capsys):
    monkeypatch.setattr("ollama_proxy.cli.store_access.SERVICE_ENV_FILE", env_file)
    monkeypatch.delenv(SERVICE_ENV, raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\nlogging: {{dir: '{tmp_path}'}}\n")
    for _ in range(2):
        assert main(["keys", "list", "--config", str(config)]) == 0
        assert "not on the service's (/var/lib/ollama-proxy/ollama-proxy.db)" in capsys.readouterr().err
