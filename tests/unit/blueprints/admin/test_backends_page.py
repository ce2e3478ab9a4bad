import re

from flask import Flask, render_template

from ollama_proxy.blueprints.admin.base import bp


def _error_cells(*upstreams: dict) -> list[str]:
    app = Flask("ollama_proxy")  # the package's templates
    app.register_blueprint(bp)
    report = {"status": "degraded", "version": "1", "upstreams": list(upstreams)}
    with app.test_request_context("/admin/backends"):
        page = render_template("admin/backends.html", report=report, healthy=True)
    rows = page.split("<tbody>")[1].split("</tr>")[:-1]
    return [row.rsplit("<td>", 1)[1].split("</td>")[0] for row in rows]


def test_the_error_column_shows_a_failure_now_or_the_last_one_marked_as_past():
    down = {"name": "gpu2", "type": "ollama", "url": "http://gpu2", "state": "down", "models": 0,
            "error": "connection refused", "last_error": "connection refused"}
    back = {**down, "state": "ok", "error": None, "last_error": "connection refused"}
    never = {**back, "last_error": None}
    assert _error_cells(down, back, never) == [
        "connection refused", '<span class="muted">last: connection refused</span>', ""]


def _cells(*upstreams: dict) -> list[list[str]]:
    app = Flask("ollama_proxy")
    app.register_blueprint(bp)
    report = {"status": "ok", "version": "1", "upstreams": list(upstreams)}
    with app.test_request_context("/admin/backends"):
        page = render_template("admin/backends.html", report=report, healthy=True)
    rows = page.split("<tbody>")[1].split("</tr>")[:-1]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in rows]


def test_a_latency_and_a_model_count_not_known_show_a_dash():
    provider = {"name": "deepseek", "type": "openai", "url": "https://api.deepseek.com", "state": "configured",
                "models": None, "latency_ms": None, "error": None, "last_error": None}
    asked = {**provider, "models": 3, "latency_ms": 41.5}
    (unknown, known) = _cells(provider, asked)
    assert unknown[5:7] == ["–", "–"] and known[5:7] == ["3", "41.5 ms"]
