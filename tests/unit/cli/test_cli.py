import argparse
import io

import pytest
from werkzeug.security import check_password_hash

from ollama_proxy.cli import admin_password, check_config

CONFIG = """
auth: {generate_tokens: [tok-1]}
backends:
  - {name: gpu2, type: ollama, base_url: "http://10.0.0.12:11434", max_concurrent: 2, models: ["llama*"]}
  - {name: deepseek, type: openai, preset: deepseek, api_key_env: OP_TEST_DEEPSEEK_KEY}
"""


def test_check_config_lists_backends_never_their_keys(tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    monkeypatch.setenv("OP_TEST_DEEPSEEK_KEY", "sk-very-secret")
    assert check_config(str(path)) == 0
    out = capsys.readouterr().out
    assert "backend:    gpu2 (ollama) http://10.0.0.12:11434, at most 2 at once, models llama*" in out
    assert "backend:    deepseek (openai) https://api.deepseek.com/v1, key from $OP_TEST_DEEPSEEK_KEY" in out
    assert "sk-very-secret" not in out


def test_check_config_names_a_missing_key_variable(tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    monkeypatch.delenv("OP_TEST_DEEPSEEK_KEY", raising=False)
    assert check_config(str(path)) == 1
    assert "$OP_TEST_DEEPSEEK_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("stdin, status", [
    ("a long enough password\n", 0),
    ("a long enough password", 0),
    ("short\n", 1),
    ("", 1),
])
def test_admin_password_hashes_a_line_from_stdin(stdin, status, capsys):
    assert admin_password(io.StringIO(stdin)) == status
    out, err = capsys.readouterr()
    if status == 0:
        assert check_password_hash(out.strip(), "a long enough password")
        assert "a long enough password" not in out
    else:
        assert out == "" and "too short" in err


@pytest.mark.parametrize("admin, shown", [
    ("", "admin page: off (make a hash: ollama-proxy admin-password)"),
    ("admin: {username: ops, password_hash: 'pbkdf2:sha256:1$salt$00ff'}", "admin page: on, user ops"),
    ("admin: {oidc: {issuer: 'https://sso.lan/realms/a', client_id: p}}",
     "admin page: on, single sign-on with https://sso.lan/realms/a"),
])
def test_check_config_says_whether_the_admin_page_is_on(tmp_path, capsys, admin, shown):
    path = tmp_path / "c.yaml"
    path.write_text("auth: {generate_tokens: [tok-1]}\n" + admin + "\n")
    assert check_config(str(path)) == 0
    out = capsys.readouterr().out
    assert shown in out and "00ff" not in out


def _parsers(parser, path=("ollama-proxy",)):
    """Yield (command path, parser) for the command line and every subcommand below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_option_of_every_command_says_what_it_is():
    from ollama_proxy.cli import build_parser

    silent = [f"{' '.join(path)} {action.dest}" for path, parser in _parsers(build_parser())
              for action in parser._actions
              if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert silent == []
