"""Show the scheduler live: each server's loaded models, busy slots and cached prompts, who runs, who waits.

The page draws its tables from ``/admin/scheduler.json``, which it polls
(``static/scheduler.js``); both ask the arbiter for its state through this
worker's admission, waiting at most ``scheduling.status_timeout``.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import current_app, jsonify, render_template, url_for

from ollama_proxy.blueprints.admin.base import bp

REFRESH_SECONDS = 2  # between two polls of the page
STARTS = {"warm": "warm", "load": "loaded the model", "reload": "reloaded the model"}


@bp.get("/scheduler")
def scheduler():
    """The live view, drawn at once from the state read now."""
    return render_template("admin/scheduler.html", view=current_view(), refresh=REFRESH_SECONDS,
                           state_url=url_for("admin.scheduler_state"))


@bp.get("/scheduler.json")
def scheduler_state():
    """The scheduler's state, as the page shows it."""
    return jsonify(current_view())


def current_view() -> dict:
    admission = getattr(current_app.extensions.get("ollama_proxy.dispatcher"), "admission", None)
    if admission is None:
        return live_view(None, time.time(), message="No Ollama server is scheduled (`scheduling: off`): "
                                                     "requests are sent at once.")
    timeout = current_app.config["SETTINGS"].scheduling.status_timeout
    return live_view(admission.status(timeout), time.time(),
                     message=f"The scheduler did not answer within {timeout:g} s (scheduling.status_timeout).")


def live_view(status: dict | None, now: float, message: str = "") -> dict:
    """Shape a ``snapshot`` into the rows the page shows, times as UTC wall-clock; ``message`` when there is none."""
    view = {"at": _clock(now), "ok": status is not None, "message": "" if status is not None else message,
            "models": [], "prompts": [], "cache": [], "running": [], "waiting": []}
    if status is not None:
        view["models"] = [row for server in status["servers"] for row in _model_rows(server)]
        view["prompts"] = [row for server in status["servers"] for row in _prompt_rows(server)]
        view["cache"] = [_cache_row(hits) for hits in status.get("prompt_cache", ())]  # none: an older arbiter
        view["running"] = [_running_row(run, now) for run in status["running"]]
        view["waiting"] = [_waiting_row(position, wait) for position, wait in enumerate(status["waiting"], start=1)]
    return view


def _model_rows(server: dict) -> list[dict]:
    """One row per loaded model; a server with none loaded gets one row saying so."""
    busy = f"{server['busy']} / {server['slots']}"
    rows = [{"server": server["name"], "server_busy": busy, "model": runner["model"],
             "options": _options(runner["options"]), "busy": f"{runner['busy']} / {runner['slots']}",
             "note": "draining, to reload with larger options" if runner["reserved"] else ""}
            for runner in server["models"]]
    return rows or [{"server": server["name"], "server_busy": busy, "model": "", "options": "", "busy": "",
                     "note": "no model loaded"}]


def _prompt_rows(server: dict) -> list[dict]:
    """One row per prompt a server's llama-server holds, as the scheduler mirrors it: in a slot, or saved in RAM."""
    return [{"server": server["name"], "model": runner["model"], "where": held["where"], "owner": held["owner"],
             "tokens": held["tokens"], "state": "in use" if held["in_use"] else "idle"}
            for runner in server["models"] for held in runner.get("prompts", ())]  # none: an older arbiter


def _cache_row(hits: dict) -> dict:
    """What one server's answers said of the mirror: hits it predicted, those confirmed, tokens each way."""
    return {"server": hits["server"], "model": hits["model"], "hits": f"{hits['confirmed']} / {hits['predicted']}",
            "tokens": f"{hits['confirmed_tokens']} / {hits['predicted_tokens']}", "surprises": hits["surprises"],
            "reliability": f"{hits['reliability']:.0%}"}


def _running_row(run: dict, now: float) -> dict:
    return {"principal": run["principal"], "class": run["class"], "model": run["model"], "server": run["server"],
            "since": _clock(now - run["running"]), "for": _duration(run["running"]),
            "start": STARTS.get(run["start"], run["start"])}


def _waiting_row(position: int, wait: dict) -> dict:
    return {"position": position, "principal": wait["principal"], "class": wait["class"], "model": wait["model"],
            "waited": _duration(wait["waited"]), "servers": ", ".join(wait["servers"])}


def _options(options: dict) -> str:
    return ", ".join(f"{name} {value}" for name, value in sorted(options.items()))


def _clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%H:%M:%S UTC")


def _duration(seconds: float) -> str:
    """Say a duration the way a person reads it at a glance: 4.2 s, 3 min 5 s, 2 h 10 min."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
