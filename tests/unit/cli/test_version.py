"""``ollama-proxy --version``: the release, its newest migration, and the configured store's."""

from __future__ import annotations

import pytest
import yaml

from ollama_proxy import __version__
from ollama_proxy.cli import main
from ollama_proxy.config import StoreSettings
from ollama_proxy.store import open_store
from ollama_proxy.store.migrate import HEAD_REVISION


@pytest.fixture
def config(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"store": {"url": f"sqlite:///{tmp_path / 'store.db'}"}}))
    monkeypatch.setenv("OLLAMA_PROXY_CONFIG", str(path))
    return path


def _store(tmp_path):
    return open_store(StoreSettings(f"sqlite:///{tmp_path / 'store.db'}", 5.0))


def test_version_names_the_release_its_newest_migration_and_the_stores(config, tmp_path, capsys):
    _store(tmp_path).close()
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ollama-proxy {__version__} (migrations up to {HEAD_REVISION})",
        f"store: at migration {HEAD_REVISION} ({tmp_path / 'store.db'})"]


def test_version_is_a_number_from_the_package_metadata():
    assert __version__.count(".") == 2 and __version__.replace(".", "").isdigit()


def test_version_says_when_the_store_is_not_made_yet(config, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.splitlines()[1] == f"store: none yet at {tmp_path / 'store.db'}"
