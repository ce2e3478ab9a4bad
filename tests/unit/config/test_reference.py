import subprocess
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from ollama_proxy.config.checks import HttpUrl, MiB
from ollama_proxy.config.declare import declared_settings, entry_types, is_section, section, setting
from ollama_proxy.config.paths import PROJECT_ROOT
from ollama_proxy.config.reference import REGENERATE, default_text, env_text, render_reference, type_name
from ollama_proxy.config.settings import Settings
from ollama_proxy.config.tokens import Token

DOCS_PAGE = PROJECT_ROOT / "docs" / "configuration.md"


def test_the_docs_page_is_what_the_declarations_render():
    assert DOCS_PAGE.read_text(encoding="utf-8") == render_reference(), (
        f"docs/configuration.md is out of date with ollama_proxy/config/: run `{REGENERATE}`")


def test_the_module_prints_the_page():
    done = subprocess.run([sys.executable, "-m", "ollama_proxy.config.reference"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, check=True)
    assert done.stdout == render_reference() and done.stderr == ""


def _paths(cls: type, prefix: str) -> list[str]:
    out = []
    for key in declared_settings(cls):
        path = f"{prefix}{key.key}"
        if is_section(key.annotation):
            out += _paths(key.annotation, path + ".")
            continue
        out.append(path)
        suffix = "[]." if "tuple" in str(key.annotation) else ".*."
        for kind in entry_types(key.annotation):
            out += _paths(kind, path + suffix)
    return out


def test_every_declared_key_has_a_row():
    page = render_reference()
    paths = _paths(Settings, "")
    assert "service.read_timeout" in paths and "backends[].model_facts.*.capabilities" in paths
    missing = [path for path in paths if f"| `{path}` |" not in page]
    assert missing == []


def test_a_row_shows_type_default_environment_and_help():
    page = render_reference()
    assert ("| `service.read_timeout` | number | `600` | `OLLAMA_PROXY_READ_TIMEOUT` | seconds to wait for an "
            "answer to start (model loading included) |") in page
    assert "| `cors.origins` | list of strings | `[]` | `OLLAMA_PROXY_CORS_ORIGINS` (comma-separated) |" in page
    assert "### `backends[]` with `type: openai`" in page
    assert "| `backends[].type` | string | required |  | `openai` for this kind of entry |" in page
    assert "#### `backends[].model_facts.*`" in page


def _positive(value):
    return value > 0


@dataclass(frozen=True)
class Leaf:
    TAG: ClassVar[tuple[str, str]] = ("kind", "leaf")

    label: str = setting(help="its label")
    weight: float = setting(1.0, help="a | b")


@dataclass(frozen=True)
class Branch:
    name: str = setting("twig", help="its name")
    sizes: tuple[int, ...] = setting((1, 2), env="TOY_SIZES", help="sizes")
    leaves: dict[str, Leaf] = setting({}, help="leaves by name")
    limit_bytes: int = setting(3 * MiB, help="bytes")
    huge_bytes: int = setting(2 * 1024 * MiB, help="bytes")
    odd_bytes: int = setting(MiB + 1, help="bytes")
    ratio: float = setting(0.25, validate=_positive, help="a ratio")
    when: float = setting(30.0, help="seconds")
    flag: bool = setting(True, help="a flag")
    url: HttpUrl = setting("http://h:1", env="TOY_URL", help="a URL")
    note: str = setting("", help="a note")
    maybe: int | None = setting(None, help="maybe")
    anything: dict[str, Any] = setting({"a": 1}, help="any")


@dataclass(frozen=True)
class Toy:
    branch: Branch = section(Branch, help="The branch section.")
    tokens: tuple[Token, ...] = setting((), help="toy tokens")


def _key(name: str):
    return next(key for key in declared_settings(Branch) if key.name == name)


@pytest.mark.parametrize("name, shown", [
    ("name", "`twig`"), ("sizes", "`[1, 2]`"), ("leaves", "`{}`"), ("limit_bytes", "`3145728` (3 MiB)"),
    ("huge_bytes", "`2147483648` (2 GiB)"), ("odd_bytes", "`1048577`"), ("ratio", "`0.25`"), ("when", "`30`"),
    ("flag", "`true`"), ("url", "`http://h:1`"), ("note", '`""`'), ("maybe", "none"), ("anything", '`{"a": 1}`'),
])
def test_default_text(name, shown):
    assert default_text(_key(name)) == shown


@pytest.mark.parametrize("name, shown", [
    ("name", "string"), ("sizes", "list of integers"), ("leaves", "mapping of string to mapping"),
    ("ratio", "number"), ("flag", "boolean"), ("url", "URL"), ("maybe", "integer"),
    ("anything", "mapping of string to anything"),
])
def test_type_name(name, shown):
    assert type_name(_key(name)) == shown


def test_a_field_of_its_own_names_its_type():
    generate_tokens = declared_settings(declared_settings(Settings)[0].annotation)[0]
    assert type_name(generate_tokens) == "list of tokens"


@pytest.mark.parametrize("name, shown", [("sizes", "`TOY_SIZES` (comma-separated)"), ("url", "`TOY_URL`"),
                                         ("note", "")])
def test_env_text(name, shown):
    assert env_text(_key(name)) == shown


def test_a_toy_configuration_renders_sections_entries_and_escapes_pipes():
    page = render_reference(Toy)
    assert page.startswith("# Configuration reference\n")
    assert "## `branch`\n\nThe branch section.\n\n| key | type | default | environment | meaning |\n" in page
    assert "| `branch.name` | string | `twig` |  | its name |" in page
    assert "| `branch.leaves.*.label` | string | required |  | its label |" in page
    assert "### `branch.leaves.*` with `kind: leaf`" in page
    assert "| `branch.leaves.*.kind` | string | required |  | `leaf` for this kind of entry |" in page
    assert "| `branch.leaves.*.weight` | number | `1` |  | a \\| b |" in page
    assert "## `tokens`\n\n| key |" in page
    assert "### `tokens[]`" in page and "| `tokens[].token` | string | required |" in page
    assert page.endswith("|\n") and not page.endswith("\n\n")
