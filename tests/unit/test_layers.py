"""No room imports one it must not (docs/architecture.md, "The rooms"): read from the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ollama_proxy"


def _room(module: str) -> str:
    """Name the room of a dotted module of the package: ``relay``, ``greenlets``, ``blueprints.native``."""
    parts = module.split(".")[1:]
    if parts[:1] == ["blueprints"] and len(parts) > 1:
        return ".".join(parts[:2])  # each blueprint is a room of its own, a package like admin/ too
    return parts[0] if parts else ""


_WAITS_OR_SENDS = ("gevent", "redis", "socket", "threading", "flask", "requests", "urllib3")


def _forbidden(importer: str, target: str) -> str | None:
    """Say why the module ``importer`` may not import ``target`` (both dotted), or None if it may."""
    source, room = _room(importer), _room(target) if target.startswith("ollama_proxy.") else None
    if source in ("backends", "scheduler") and room == "relay":
        return "the relay calls the backends and the scheduler, never the other way"
    if source == "routing" and room == "scheduler":
        return "routing names a model and its backend; the dispatcher asks the scheduler"
    if source == "dispatch" and (room == "relay" or (room or "").startswith("blueprints")):
        return "the dispatcher is called by the relay and the blueprints"
    if source.startswith("blueprints.") and (room or "").startswith("blueprints.") and room != source:
        return "a blueprint is glue over the rooms below it, not over another blueprint"
    if source == "identity" and (room or "").startswith("blueprints"):
        return "the admin page's glue calls the identity room, never the other way"
    if importer.startswith("ollama_proxy.scheduler.decisions") and (
            target.startswith("ollama_proxy.scheduler.transport") or target.split(".")[0] in _WAITS_OR_SENDS):
        return "the scheduler's decisions are pure and clock-driven: the transport carries them, never the other way"
    if source == "translate" and room is not None and room not in ("translate", "errors"):
        return "translation is pure: it knows protocols and the error family, nothing of the app"
    if source == "ledger" and room is not None and room not in ("ledger", "errors"):
        return "the ledger is at the bottom: every room writes to the request's record, it knows none of them"
    if source != "backends" and target.split(".")[0] in ("requests", "urllib3"):
        return "only the backends speak HTTP to upstreams, and map its exceptions"
    return None


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Return the dotted modules ``path`` imports, wherever in it (inside functions too)."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "ollama_proxy":  # ``from ollama_proxy import relay`` imports a room by its name
                found.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                found.add(base)
    return found


def _violations() -> dict[tuple[str, str], str]:
    return {(_module_of(path), target): why
            for path in sorted(PACKAGE.rglob("*.py"))
            for target in _imports(path)
            if (why := _forbidden(_module_of(path), target)) is not None}


# What breaks the rules today, each with what removes it. An entry that no longer breaks them fails the test.
ALLOWED: set[tuple[str, str]] = set()  # imports against the rules, each with what removes it


def test_no_room_imports_one_above_it_or_beside_it():
    found = _violations()
    broken = {pair: why for pair, why in found.items() if pair not in ALLOWED}
    assert not broken, "\n".join(f"{a} imports {b}: {why}" for (a, b), why in sorted(broken.items()))


def test_every_allowed_exception_still_needs_to_be_allowed():
    assert ALLOWED <= set(_violations()), sorted(ALLOWED - set(_violations()))


def test_the_rules_see_what_they_forbid():
    assert _forbidden("ollama_proxy.backends.pool", "ollama_proxy.relay.streaming")
    assert _forbidden("ollama_proxy.scheduler.transport.local", "ollama_proxy.relay")
    assert _forbidden("ollama_proxy.routing.routes", "ollama_proxy.scheduler.transport.client")
    assert _forbidden("ollama_proxy.blueprints.openai", "ollama_proxy.blueprints.native")
    assert _forbidden("ollama_proxy.identity.recheck", "ollama_proxy.blueprints.admin.session")
    assert not _forbidden("ollama_proxy.blueprints.admin.oidc", "ollama_proxy.identity.claims")
    assert _forbidden("ollama_proxy.translate.openai", "ollama_proxy.lines")
    assert _forbidden("ollama_proxy.relay.streaming", "requests")
    assert _forbidden("ollama_proxy.ledger", "ollama_proxy.surfaces")
    assert _forbidden("ollama_proxy.scheduler.decisions.core", "ollama_proxy.scheduler.transport.wire")
    assert _forbidden("ollama_proxy.scheduler.decisions.placement", "gevent.event")
    assert not _forbidden("ollama_proxy.scheduler.transport.arbiter", "ollama_proxy.scheduler.decisions.core")
    assert not _forbidden("ollama_proxy.ledger", "ollama_proxy.errors")
    assert not _forbidden("ollama_proxy.blueprints.admin.keys", "ollama_proxy.blueprints.admin.forms")
    assert not _forbidden("ollama_proxy.translate.anthropic.stream", "ollama_proxy.errors")
    assert not _forbidden("ollama_proxy.backends.session", "requests")
    assert not _forbidden("ollama_proxy.backends.upstream_response", "ollama_proxy.lines")


def test_relative_and_package_imports_are_read_as_the_modules_they_name(tmp_path, monkeypatch):
    package = tmp_path / "ollama_proxy"
    (package / "translate").mkdir(parents=True)
    source = package / "translate" / "x.py"
    source.write_text("from ..relay import streaming\nfrom ollama_proxy import greenlets\nimport requests\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", package)
    assert _imports(source) == {"ollama_proxy.relay", "ollama_proxy.greenlets", "requests"}


def _flask_g_readers() -> list[str]:
    """The modules that take ``flask.g``: by ``from flask import g`` or as ``flask.g``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            imported = isinstance(node, ast.ImportFrom) and node.module == "flask" and any(
                alias.name == "g" for alias in node.names)
            named = isinstance(node, ast.Attribute) and node.attr == "g" and isinstance(node.value, ast.Name) and \
                node.value.id == "flask"
            if imported or named:
                found.append(_module_of(path))
                break
    return found


def test_no_module_keeps_request_state_in_flask_g():
    """The request's record is its only state: who calls, its rate windows, its budget figures (``ledger``)."""
    assert _flask_g_readers() == []
