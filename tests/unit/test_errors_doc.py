"""docs/errors.md has a row for every error status the code of ollama_proxy/ can answer, and no other."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ollama_proxy"
DOC = ROOT / "docs" / "errors.md"

# Rows the code cannot be read for: each one a status that no literal in ollama_proxy/ gives, and why it is true.
DOCUMENTED_WITHOUT_A_LITERAL = {
    # Werkzeug serves /admin/static/: a Range past a file's end raises its RequestedRangeNotSatisfiable, which
    # app.py's _from_http_exception answers with the exception's own code, as it does any HTTPException.
    416: "Werkzeug's answer to a Range past the end of a file under /admin/static/",
    # The same file serving (Response.make_conditional) sets 412 itself for an If-Match the file does not meet.
    412: "Werkzeug's answer to an If-Match a file under /admin/static/ does not meet",
}
ROOT_CLASS = "ProxyError"  # the error family: a class that derives from it answers its ``status``
_STATUS = re.compile(r"\b[1-5]\d\d\b")
_FENCE = re.compile(r"^(```|~~~)")


def is_error_status(value) -> bool:
    return type(value) is int and 400 <= value <= 599


def _error_literals(node: ast.AST) -> list[int]:
    """Return the error statuses written as literals in ``node`` (``503 if down else 200`` gives 503)."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and is_error_status(n.value)]


def _name(node: ast.AST) -> str | None:
    """Return the last name of a callee or a base class: ``Forbidden``, ``errors.Forbidden`` -> ``Forbidden``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def parse_package(package: Path = PACKAGE) -> dict[str, ast.Module]:
    """Return the syntax tree of every module of ``package``, by its path from the project root."""
    return {path.relative_to(package.parent).as_posix(): ast.parse(path.read_text(encoding="utf-8"), str(path))
            for path in sorted(package.rglob("*.py"))}


def error_family(modules: dict[str, ast.Module]) -> set[str]:
    """Return the names of ``ProxyError`` and of every class deriving from it, in any module."""
    bases: dict[str, set[str]] = defaultdict(set)
    for tree in modules.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases[node.name].update(filter(None, map(_name, node.bases)))
    family, grown = {ROOT_CLASS}, True
    while grown:
        grown = False
        for name, parents in bases.items():
            if name not in family and parents & family:
                family.add(name)
                grown = True
    return family


def statuses_in_code(modules: dict[str, ast.Module]) -> dict[int, list[str]]:
    """Return every error status the code can answer, each with where it comes from.

    Read from: the ``status = N`` of each class of the error family; every ``status=N``
    keyword of a call; a literal passed to a ``status`` parameter of a function of the same
    module; the status of a view's ``return body, N``; the keys of app.py's ``_HTTP_ERRORS``,
    the Werkzeug exceptions it maps to the family.
    """
    family = error_family(modules)
    found: dict[int, list[str]] = defaultdict(list)

    def note(values, path: str, node: ast.AST, how: str) -> None:
        for value in values:
            found[value].append(f"{path}:{node.lineno} ({how})")

    for path, tree in modules.items():
        status_index = {}  # function name -> index of its positional ``status`` parameter
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [arg.arg for arg in (*node.args.posonlyargs, *node.args.args)]
                if "status" in names:
                    status_index[node.name] = names.index("status")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in family:
                for statement in node.body:
                    targets = statement.targets if isinstance(statement, ast.Assign) else (
                        [statement.target] if isinstance(statement, ast.AnnAssign) and statement.value else [])
                    if any(isinstance(t, ast.Name) and t.id == "status" for t in targets):
                        note(_error_literals(statement.value), path, statement, f"class {node.name}")
            elif isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "status":
                        note(_error_literals(keyword.value), path, keyword.value, "status=")
                index = status_index.get(_name(node.func) or "")
                if index is not None and index < len(node.args):
                    note(_error_literals(node.args[index]), path, node, f"{_name(node.func)}'s status")
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and len(node.value.elts) > 1:
                note(_error_literals(node.value.elts[1]), path, node, "return body, status")
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_HTTP_ERRORS"
                                                      for t in node.targets):
                if isinstance(node.value, ast.Dict):
                    note([k.value for k in node.value.keys if isinstance(k, ast.Constant)
                          and is_error_status(k.value)], path, node, "_HTTP_ERRORS")
    return dict(found)


def passed_on_in_code(modules: dict[str, ast.Module]) -> list[str]:
    """Return where an error of the family is raised with a status that is no literal: an upstream's, kept."""
    family = error_family(modules)
    return [f"{path}:{node.lineno}" for path, tree in modules.items() for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _name(node.func) in family
            and any(k.arg == "status" and not isinstance(k.value, ast.Constant) for k in node.keywords)]


def status_rows(markdown: str) -> list[tuple[str, str]]:
    """Return the (status, when) cells of every row of each ``| status | when |`` table, outside code blocks."""
    rows, in_table, fenced = [], False, False
    for line in markdown.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if fenced or not cells:
            in_table = False
        elif cells[0].lower() == "status":
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            rows.append((cells[0], cells[-1]))
    return rows


def statuses_in_doc(markdown: str) -> set[int]:
    """Return every status a row of ``markdown`` names (``401 / 403`` names two)."""
    return {int(found) for status, _ in status_rows(markdown) for found in _STATUS.findall(status)}


def _where(statuses, sources: dict[int, list[str]]) -> str:
    return "\n".join(f"  {status}: {', '.join(sources.get(status, ['?']))}" for status in sorted(statuses))


@pytest.fixture(scope="module")
def package() -> dict[str, ast.Module]:
    """The package's syntax trees, read once for the tests of this module: none of them changes a tree."""
    return parse_package()


@pytest.fixture(scope="module")
def in_code(package) -> dict[int, list[str]]:
    return statuses_in_code(package)


def test_every_error_status_the_code_answers_has_a_row_in_docs_errors_md(in_code):
    missing = set(in_code) - statuses_in_doc(DOC.read_text(encoding="utf-8"))
    assert not missing, f"statuses the code answers with no row in {DOC.name}:\n{_where(missing, in_code)}"


def test_every_status_row_of_docs_errors_md_is_one_the_code_answers(in_code):
    stale = statuses_in_doc(DOC.read_text(encoding="utf-8")) - set(in_code) - set(DOCUMENTED_WITHOUT_A_LITERAL)
    assert not stale, (f"rows of {DOC.name} for statuses nothing in ollama_proxy/ answers (remove them, or say "
                       f"in DOCUMENTED_WITHOUT_A_LITERAL why they are true): {sorted(stale)}")


def test_every_status_documented_without_a_literal_is_still_not_one_in_the_code(in_code):
    assert not set(DOCUMENTED_WITHOUT_A_LITERAL) & set(in_code), (
        f"the code now gives these itself; drop them from DOCUMENTED_WITHOUT_A_LITERAL:\n"
        f"{_where(set(DOCUMENTED_WITHOUT_A_LITERAL) & set(in_code), in_code)}")


def test_the_statuses_passed_on_from_an_upstream_have_a_row_of_their_own(package):
    passed_on = passed_on_in_code(package)
    assert passed_on, "no error keeps an upstream's status any more: drop the row for them, and this test"
    rows = [when for status, when in status_rows(DOC.read_text(encoding="utf-8")) if not _STATUS.search(status)]
    assert any("Ollama" in when and "provider" in when for when in rows), (
        f"errors keep the status Ollama or a provider answered ({', '.join(passed_on)}), "
        f"but no row of {DOC.name} without a number says so")


def test_the_reader_finds_each_way_the_code_gives_a_status():
    source = '''
class ProxyError(Exception):
    status = 500
class Base(ProxyError):
    status = 400
class Deeper(Base):
    status: int = 413
class Unrelated:
    status = 418
_HTTP_ERRORS = {404: Base, 405: Base}
def page(form, status=200):
    return form, status
def view():
    page("form", 401)
    page("form", status=429)
    Base("gone", status=self.status)
    return "off", 503 if off else 200
def sizes(count):
    return [1], count, "x"[:450]
'''
    modules = {"pkg/m.py": ast.parse(source)}
    found = statuses_in_code(modules)
    assert sorted(found) == [400, 401, 404, 405, 413, 429, 500, 503]
    assert found[413] == ["pkg/m.py:7 (class Deeper)"]
    assert found[401] == ["pkg/m.py:14 (page's status)"]
    assert passed_on_in_code(modules) == ["pkg/m.py:16"]


def test_the_doc_reader_takes_status_rows_of_status_tables_only():
    markdown = (
        "| status | when |\n|---|---|\n| 400 | bad |\n| 401 / 403 | who |\n| Ollama's | theirs |\n\n"
        "Text that says 418.\n\n| setting | default |\n|---|---|\n| `a` | 999 |\n\n"
        "```\n| status | when |\n| 402 | in a fence |\n```\n"
        "| Status | when |\n|:---|---|\n| 412 / 416 | files |\n")
    assert status_rows(markdown) == [("400", "bad"), ("401 / 403", "who"), ("Ollama's", "theirs"),
                                     ("412 / 416", "files")]
    assert statuses_in_doc(markdown) == {400, 401, 403, 412, 416}
