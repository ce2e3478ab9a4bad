"""docs/architecture.md describes every room of the package, and only rooms that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ollama_proxy"
PAGE = (ROOT / "docs" / "architecture.md").read_text()


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
