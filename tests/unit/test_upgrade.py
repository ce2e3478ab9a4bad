"""What a start or reload checks first: the settings, the store's migration, the app."""

import sqlite3

import pytest
import yaml

from ollama_proxy.store.migrate import HEAD_REVISION
from ollama_proxy.upgrade import Refused, main, prepare


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A configuration of its own, with its store, named by the environment as the service names it."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "auth": {"generate_tokens": ["gen-token-0123456789"]},
        "logging": {"dir": str(tmp_path / "logs")},
        "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
        "ratelimit": {"storage_url": f"sqlite:///{tmp_path / 'ratelimit.db'}"},
    }))
    monkeypatch.setenv("OLLAMA_PROXY_CONFIG", str(path))
    return path


def _revision(config) -> str:
    with sqlite3.connect(config.parent / "store.db") as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_a_new_store_is_migrated_to_this_codes_newest_migration_and_the_app_built(config):
    prepared = prepare()
    assert _revision(config) == HEAD_REVISION
    assert prepared.as_dict() == {"redis_url": None, "admin_enabled": False}


def test_a_bad_configuration_is_refused_before_anything_is_migrated(config):
    config.write_text("limits:\n  max_body_bytes: lots\n")
    with pytest.raises(Refused) as refused:
        prepare()
    assert refused.value.stage == "config" and "limits.max_body_bytes" in str(refused.value)
    assert not (config.parent / "store.db").exists()


def test_a_store_newer_code_migrated_is_refused_naming_both_migrations(config, capsys):
    prepare(build_app=False)
    with sqlite3.connect(config.parent / "store.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(Refused) as refused:
        prepare(build_app=False)
    assert refused.value.stage == "store"
    assert f"at migration 9999, which this code does not know (its newest is {HEAD_REVISION})" in str(refused.value)
    assert main() == 1
    assert "upgrade refused, the running service is left as it is: the store is at migration 9999" in (
        capsys.readouterr().err)
    assert _revision(config) == "9999", "a refused store is left as it was"
