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
