"""Every test that starts an outside tool carries its marker, so that ``-m "not <tool>"`` leaves it out."""

from __future__ import annotations

import ast
import configparser
import functools
import re
from pathlib import Path

from tests.conftest import OUTSIDE_TOOLS, imported_modules

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
HELPERS = {helper: marker for marker, (_, helpers) in OUTSIDE_TOOLS.items() for helper in helpers}
STARTERS = {fixture: marker for marker, (fixtures, _) in OUTSIDE_TOOLS.items() for fixture in fixtures}

# Modules that start programs but need no marker of their own, and why.
IN_HOUSE = {
    "tests.e2e.conftest": "the fixtures of OUTSIDE_TOOLS (llama_server, browser, test_services) start them",
    "tests.e2e.nginx": "run only by tests that ask for the test_services fixture first",
    "tests.e2e.server": "gunicorn and the fake Ollama, from this .venv",
    "tests.e2e.command": "the ollama-proxy command from this .venv",
    "tests.e2e.test_deploy": "the tools test_services installs, through that fixture",
    "tests.e2e.test_keys": "the ollama-proxy command from this .venv",
    "tests.e2e.test_ratelimit": "ollama-proxy check-config, with this Python",
    "tests.e2e.test_start": "gunicorn and scripts/serve.sh from this checkout",
    "tests.e2e.test_upgrade_reload": "gunicorn, ollama-proxy and kill as the unit's ExecReload= says, from this .venv",
    "tests.e2e.test_readme": "bash, curl, scripts/serve.sh and the fake Ollama, as the README's first request does",
    "tests.e2e.test_vm_year": "git, to find the earlier release (the VM's own lines run through tests.e2e.vm)",
    "tests.e2e.vm": "INSTALL.md's lines with bash, gunicorn as the unit says (nginx: tests.e2e.nginx)",
    "tests.unit.cli.test_usage": "the ollama-proxy command from this .venv, piped into head",
    "tests.unit.test_deploy_files": "this Python, running deploy/gunicorn.conf.py's worker hook",
    "tests.unit.test_scripts": "scripts/check on a fake .venv",
    "tests.unit.backends.test_ollama_gevent": "a probe, with this Python",
    "tests.unit.access.test_together": "greenlets in a gevent-patched process, with this Python",
    "tests.unit.config.test_reference": "the reference generator, with this Python",
    "tests.unit.test_docs": "mkdocs from this .venv",
    "tests.unit.conftest": "pytest, to collect the end-to-end tests for tests.unit.test_markers",
    "tests.unit.test_bench": "the benchmarks imported, with this Python",
}
_STARTS = re.compile(r"\bsubprocess\.|\bPopen\(|\bsync_playwright\b")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "node_modules" not in p.parts)


def test_every_marker_is_registered():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    registered = {line.split(":")[0].strip() for line in config["tool:pytest"]["markers"].splitlines() if line.strip()}
    assert set(OUTSIDE_TOOLS) <= registered


def test_every_helper_and_fixture_named_exists():
    modules = {_module(path) for path in _sources()}
    assert set(HELPERS) <= modules
    defined = {node.name for path in TESTS.rglob("conftest.py") if "node_modules" not in path.parts
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}
    assert set(STARTERS) <= defined


def test_every_module_that_starts_a_program_is_known():
    starting = {_module(path) for path in _sources() if _STARTS.search(path.read_text())}
    unknown = starting - set(HELPERS) - set(IN_HOUSE)
    assert not unknown, f"add them to OUTSIDE_TOOLS in tests/conftest.py, or to IN_HOUSE here: {sorted(unknown)}"
    assert not set(IN_HOUSE) - starting, "IN_HOUSE names a module that starts nothing now"


@functools.cache  # read once per file, not once per test of it
def _starts_directly(path: Path) -> dict[str, set[str]]:
    """Map each function of a test file to the markers of the fixtures among its own parameters."""
    return {node.name: {STARTERS[arg.arg] for arg in node.args.args if arg.arg in STARTERS}
            for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}


def test_leaving_every_tool_out_leaves_out_every_test_that_starts_one(e2e_collection):
    status, listed = e2e_collection  # collected beside the other unit tests: tests/unit/conftest.py
    assert status == 0, listed[-6000:]
    kept = [line.split("::") for line in listed.splitlines() if "::" in line]
    assert kept
    for file, name, *_ in kept:
        path = ROOT / file
        helpers = {HELPERS[module] for module in imported_modules(path) if module in HELPERS}
        assert not helpers, f"{file}::{name} was kept, though its module runs {sorted(helpers)}"
        fixtures = _starts_directly(path).get(name.split("[")[0], set())
        assert not fixtures, f"{file}::{name} was kept, though it starts {sorted(fixtures)}"
