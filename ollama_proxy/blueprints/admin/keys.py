"""Manage API keys: create (the secret shown once), change, disable, delete.

A team admin sees and changes its own team's keys alone, and cannot give one the manage scope
(pulling and deleting models acts on every team's).
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app, flash, redirect, render_template, session, url_for

from ollama_proxy.blueprints.admin.base import bp, change_and_return, signed_in
from ollama_proxy.blueprints.admin.forms import KeyLimitsForm, NewKeyForm, chat_log_choice
from ollama_proxy.blueprints.admin.roles import check_scope, team_scope
from ollama_proxy.blueprints.admin.teams import team_names
from ollama_proxy.config.access import token_names
from ollama_proxy.errors import Forbidden, NotFound
from ollama_proxy.store import StoreError, current_store

# The session's one-shot hold on a new key's secret, from the form's POST to the page it redirects to.
CREATED = "created_key"


def hold_secret(session, name: str, secret: str) -> None:
    """Keep a new key's secret in ``session`` until the next created-key page takes it."""
    session[CREATED] = {"name": name, "secret": secret}


def create_and_show(form, page, created: str, **fields):
    """Create the key ``form`` names with ``fields``, then redirect to the ``created`` page that shows its
    secret once; if the store refuses (a name taken, by a key or a token of the file), ``page(form, 400)`` with
    the reason under the name."""
    reserved = token_names(current_app.config["SETTINGS"])
    try:
        key, secret = current_store().create_key(form.name.data, by=signed_in(), reserved=reserved, **fields)
    except StoreError as exc:
        form.name.errors.append(str(exc))
        return page(form, 400)
    hold_secret(session, key.name, secret)
    return redirect(url_for(created, name=key.name), 303)


def take_secret(session, name: str) -> str | None:
    """Remove the held secret from ``session``; return it if it belongs to the key ``name``."""
    held = session.pop(CREATED, None)
    return held["secret"] if held and held.get("name") == name else None


def _key_or_404(name: str):
    key = current_store().get_key(name)
    if key is None:
        raise NotFound(f"no key named '{name}'")
    check_scope(key.team, f"The key '{name}'")
    return key


def _teams() -> tuple[str, ...]:
    """The teams a key may be put in: every team, or a team admin's own alone."""
    scope = team_scope()
    return team_names() if scope is None else (scope,)


# What only an admin may grant a key: each reaches past a team (the manage scope acts on every team's models,
# web tools and cloud models are the site's accounts, a trusted front end names the people it serves).
SITE_POWERS = ("web", "cloud", "trusted_frontend")


def _check_fields(fields: dict, before=None) -> dict:
    """Refuse a team admin's key in another team, or given a power of the site's (one an admin gave may stay)."""
    if team_scope() is not None:
        check_scope(fields.get("team"), "A key outside your team")
        if fields.get("scope") not in ("generate", getattr(before, "scope", "generate")):
            raise Forbidden("A team admin gives keys the generate scope only: managing models acts on every team's.")
        granted = [power for power in SITE_POWERS if fields.get(power) and not getattr(before, power, False)]
        if granted:
            raise Forbidden(f"A team admin cannot grant {', '.join(granted)}: only an admin may, for the whole site.")
    return fields


def _chat_logs_enabled() -> bool:
    return current_app.config["SETTINGS"].chat_logs.enabled


def _list_page(form: NewKeyForm, status: int = 200):
    keys = current_store().list_keys(team=team_scope())
    return render_template("admin/keys.html", keys=keys, form=form, now=datetime.now(timezone.utc),
                           chat_logs_enabled=_chat_logs_enabled()), status


@bp.get("/keys")
def keys():
    """List every key (a team admin: its team's), with the form to create one."""
    return _list_page(NewKeyForm(chat_logs_enabled=_chat_logs_enabled(), teams=_teams(), team=team_scope() or ""))


@bp.post("/keys")
def create_key():
    """Create a key, then redirect to the page that shows its secret this once.

    Redirecting keeps a reload from sending the form again (and creating a second key). The
    secret crosses the redirect in the signed session cookie, never in a URL, and the page
    that shows it removes it from the session.
    """
    form = NewKeyForm(chat_logs_enabled=_chat_logs_enabled(), teams=_teams())
    if not form.validate():
        return _list_page(form, 400)
    return create_and_show(form, _list_page, "admin.key_created", **_check_fields(form.store_fields()))


@bp.get("/keys/<name>/created")
def key_created(name: str):
    """Show a new key with its secret, once: a reload shows the key without it."""
    secret = take_secret(session, name)  # first: a held secret never outlives this page
    key = _key_or_404(name)
    return render_template("admin/key_created.html", key=key, secret=secret,
                           chat_logs_enabled=_chat_logs_enabled())


@bp.route("/keys/<name>", methods=["GET", "POST"])
def edit_key(name: str):
    """Show a key's settings; on a POST, change them."""
    key = _key_or_404(name)
    form = KeyLimitsForm(data={"scope": key.scope, "models": " ".join(key.models), "rpm": key.rpm, "tpm": key.tpm,
                               "expires": key.last_day(), "chat_log": chat_log_choice(key.chat_log),
                               "weight": key.weight, "klass": key.klass, "trusted_frontend": key.trusted_frontend,
                               "web": key.web, "cloud": key.cloud, "team": key.team or ""},
                         chat_logs_enabled=_chat_logs_enabled(), kept_expiry=key.expires_at, teams=_teams())
    if form.is_submitted():
        if not form.validate():
            return render_template("admin/key_edit.html", key=key, form=form), 400
        try:
            current_store().update_key(name, by=signed_in(), **_check_fields(form.store_fields(), key))
        except StoreError as exc:
            flash(str(exc), "error")
            return render_template("admin/key_edit.html", key=key, form=form), 400
        flash(f"Key '{name}' saved.", "ok")
        return redirect(url_for("admin.keys"))
    return render_template("admin/key_edit.html", key=key, form=form)


@bp.post("/keys/<name>/enabled/<int:enabled>")
def enable_key(name: str, enabled: int):
    """Enable or disable a key (a disabled key is refused until enabled again)."""
    _key_or_404(name)
    return change_and_return(lambda: current_store().update_key(name, by=signed_in(), enabled=bool(enabled)),
                             f"key named '{name}'", f"Key '{name}' {'enabled' if enabled else 'disabled'}.",
                             "admin.keys")


@bp.post("/keys/<name>/delete")
def delete_key(name: str):
    """Delete a key for good."""
    _key_or_404(name)
    return change_and_return(lambda: current_store().delete_key(name, by=signed_in()), f"key named '{name}'",
                             f"Key '{name}' deleted.", "admin.keys")
