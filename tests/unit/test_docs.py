"""The reference site builds without a broken link, and README.md's links lead somewhere."""

from __future__ import annotations

import ast
import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ollama_proxy.backends.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_RENDERED_MODULE = re.compile(r"^:::\s+(\S+)", re.MULTILINE)
_PRESET_ROW = re.compile(r"^\| `([a-z]+)` \| `(https://[^`]+)` \|", re.MULTILINE)


def prose_lines(markdown: str) -> list[str]:
    """Return the lines of ``markdown`` outside fenced code blocks."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """Return the anchor a forge gives a heading: lower case, punctuation gone, spaces as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(markdown: str) -> set[str]:
    """Return the anchors of every heading, a repeated one numbered as forges number it."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(markdown):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    """Return the relative links of a Markdown file whose file or heading does not exist."""
    markdown = path.read_text(encoding="utf-8")
    broken = []
    for line in prose_lines(markdown):
        for target in _LINK.findall(line):
            if _SCHEME.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(target)
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked.read_text(encoding="utf-8"))):
                broken.append(target)
    return broken


def build_site(site_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    site_dir = tmp_path_factory.mktemp("site")
    return site_dir, build_site(site_dir)


def page_text(site_dir: Path, page: Path) -> str:
    """Return the words a built page shows, without its markup."""
    built = site_dir / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
    return html.unescape(re.sub(r"<[^>]+>", "", built.read_text(encoding="utf-8")))


def module_summary(module: str) -> str:
    """Return the first line of a module's docstring as a page shows it (code marks gone)."""
    source = ROOT.joinpath(*module.split("."))
    path = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert docstring, f"{module} has no docstring to render"
    return docstring.splitlines()[0].replace("``", "")


def test_site_builds_strictly_with_every_page_and_link(site):
    # --strict turns MkDocs' warnings into a failure: a link to a missing page or anchor, a
    # page in the nav that does not exist, a page under docs/ left out of the nav.
    site_dir, result = site
    assert result.returncode == 0, result.stderr
    for page in DOCS.glob("*.md"):
        assert page_text(site_dir, page).strip(), f"{page.name} was not built"


def test_site_renders_each_translator_docstring(site):
    site_dir, result = site
    assert result.returncode == 0, result.stderr
    rendered = 0
    for page in DOCS.glob("*.md"):
        for module in _RENDERED_MODULE.findall(page.read_text(encoding="utf-8")):
            assert module_summary(module) in page_text(site_dir, page), \
                f"{page.name} does not show the docstring of {module}"
            rendered += 1
    assert rendered >= 10


def test_readme_links_lead_to_existing_files_and_headings():
    assert broken_links(ROOT / "README.md") == []


def test_readme_gives_the_commands_that_ci_and_users_run():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "```sh\nscripts/serve.sh\n```" in readme
    assert "```sh\nscripts/test.sh\n```" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_broken_links_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `real` part\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Same\n\n## Same\n\n"
        "[a](other.md) [b](other.md#the-real-part) [c](other.md#nope) [d](missing.md)\n"
        "[e](#same-1) [f](#absent) [g](https://example.org/x) [h](mailto:a@b)\n"
        "```\n[i](inside-a-fence.md)\n```\n",
        encoding="utf-8")
    assert broken_links(page) == ["other.md#nope", "missing.md", "#absent"]


def test_preset_table_matches_the_presets_in_the_code():
    table = dict(_PRESET_ROW.findall((DOCS / "providers.md").read_text(encoding="utf-8")))
    assert table == {name: preset.base_url for name, preset in PRESETS.items()}
