"""docs/architecture.md names every room of the package, only rooms that exist, in the order a request enters them."""

import gc
import os
import re
import sys
from pathlib import Path

import pytest

from ollama_proxy.app import create_app
from ollama_proxy.config import parse_settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ollama_proxy"
PAGE = (ROOT / "docs" / "architecture.md").read_text()
TOKEN = "sk-architecture-test-token-0001"


def _rooms_in_the_table() -> set[str]:
    table = PAGE.split("## The rooms", 1)[1].split("## ", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([a-z_]+(?:/|\.py))`", cell)}


def test_every_package_and_top_level_module_has_a_row_and_every_row_exists():
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert _rooms_in_the_table() == packages | modules


def _defines(module: str, attributes: list[str]) -> bool:
    """Whether some module of the package named ``module`` (a path, or its last parts) defines ``attributes``."""
    tail = Path(*module.split("."))
    sources = [p for p in PACKAGE.rglob("*.py") if p.with_suffix("").relative_to(PACKAGE).as_posix().endswith(
        tail.as_posix()) or (p.name == "__init__.py" and p.parent.relative_to(PACKAGE).as_posix().endswith(
        tail.as_posix()))]
    return any(all(re.search(rf"^\s*(def|class)? ?{re.escape(attr)}\b", s.read_text(), re.M) for attr in attributes)
               for s in sources)


def _exists(name: str) -> bool:
    parts = name.split(".")
    if (PACKAGE / Path(*parts)).with_suffix(".py").exists():
        return True
    return any(_defines(".".join(parts[:cut]), parts[cut:]) for cut in range(1, len(parts)))


def test_the_dotted_names_the_page_cites_exist():
    cited = {name for name in re.findall(r"`((?:[a-z_]+\.)+[A-Za-z_]+)`", PAGE)
             if not name.endswith((".py", ".md")) and not name.startswith("typing.")}
    missing = [name for name in cited if not _exists(name)]
    assert cited and not missing, f"docs/architecture.md cites names the code does not have: {sorted(missing)}"


def _diagram_rooms() -> list[str]:
    """The rooms of "One request's way through the house", in order, as module prefixes (a room may recur)."""
    block = PAGE.split("## One request's way through the house", 1)[1].split("```", 2)[1]
    rooms = []
    for line in block.splitlines()[2:]:
        word = line.split()[0] if line.split() else ""
        if line.startswith("  ") and re.fullmatch(r"[a-z_]+(/[a-z_<>]*|\.py)", word):
            rooms.append(word.removesuffix(".py").replace("/<surface>", "").rstrip("/").replace("/", "."))
    return rooms


def _first_entries(calls: list[str], rooms: list[str]) -> list[str]:
    """The rooms of ``rooms`` in the order ``calls`` (dotted modules) first enter them; the closest room claims."""
    entered = []
    for module in calls:
        claiming = [room for room in rooms if module == room or module.startswith(room + ".")]
        room = max(claiming, key=len, default=None)
        if room is not None and room not in entered:
            entered.append(room)
    return entered


def _is_in_order(entered: list[str], rooms: list[str]) -> bool:
    """Whether ``entered`` follows ``rooms`` (each may match any of its places, in order)."""
    position = 0
    for room in entered:
        try:
            position = rooms.index(room, position) + 1
        except ValueError:
            return False
    return True


@pytest.fixture
def traced_app(tmp_path, fake):
    settings = parse_settings({"logging": {"dir": str(tmp_path)}, "store": {"url": f"sqlite:///{tmp_path}/s.db"},
                               "service": {"base_url": fake.url}, "metrics": {"enabled": True},
                               "chat_logs": {"enabled": True}, "auth": {"generate_tokens": [TOKEN]}}, environ={})
    return create_app(settings)


def _traced(app, path: str, body: dict) -> list[str]:
    calls = []

    def profile(frame, event, arg):
        filename = frame.f_code.co_filename
        if event == "call" and filename.startswith(str(PACKAGE) + os.sep):
            relative = Path(filename).relative_to(PACKAGE).with_suffix("")
            calls.append(".".join(relative.parts[:-1] if relative.name == "__init__" else relative.parts))
    client = app.test_client()
    # Earlier tests' garbage, collected mid-request, would count as calls: an unfinished generator of a scheduler
    # left over is closed by the collector, and its frame entered (a room the request never enters).
    gc.collect()
    gc.disable()
    sys.setprofile(profile)
    try:
        answer = client.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, buffered=True)
    finally:
        sys.setprofile(None)
        gc.enable()
    assert answer.status_code == 200, answer.get_data()
    return calls


ASKED = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("path, body", [
    ("/api/chat", {"model": "llama3.2", "messages": ASKED}),
    ("/v1/chat/completions", {"model": "llama3.2", "messages": ASKED, "stream": True}),
    ("/v1/messages", {"model": "llama3.2", "messages": ASKED, "max_tokens": 20, "stream": True}),
])
def test_a_request_enters_the_rooms_in_the_order_the_page_draws_them(traced_app, path, body):
    rooms = _diagram_rooms()
    assert rooms[:3] == ["observability.metrics", "ledger", "content_encoding"], rooms
    entered = _first_entries(_traced(traced_app, path, body), rooms)
    assert {"access.auth", "blueprints", "schemas", "routing", "backends", "observability"} <= set(entered)
    assert _is_in_order(entered, rooms), f"{path} enters {entered}; the page draws {rooms}"


def _without_a_mirror() -> set[str]:
    """The modules of the package (not ``__init__`` nor migrations) with no ``tests/unit/<room>/test_<module>.py``."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py" or "migrations" in relative.parts:
            continue
        if not (ROOT / "tests" / "unit" / relative.parent / f"test_{path.name}").exists():
            found.add(relative.as_posix())
    return found


def test_every_module_has_its_mirror_test_or_the_page_says_what_tests_it():
    section = PAGE.split("## Modules tested through others", 1)[1].split("\n## ", 1)[0]
    listed = {name for name in re.findall(r"`([a-z_/]+\.py)`", section) if (PACKAGE / name).is_file()}
    assert listed == _without_a_mirror()
