"""Manage API keys: create (the secret shown once), change, disable, delete."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import flash, redirect, render_template, url_for

from ollama_proxy.blueprints.admin.base import bp, change_and_return
from ollama_proxy.blueprints.admin.forms import KeyLimitsForm, NewKeyForm
from ollama_proxy.errors import NotFound
from ollama_proxy.store import StoreError, current_store


def _key_or_404(name: str):
    key = current_store().get_key(name)
    if key is None:
        raise NotFound(f"no key named '{name}'")
    return key


def _list_page(form: NewKeyForm, status: int = 200):
    keys = current_store().list_keys()
    return render_template("admin/keys.html", keys=keys, form=form, now=datetime.now(timezone.utc)), status


@bp.get("/keys")
def keys():
    """List every key, with the form to create one."""
    return _list_page(NewKeyForm())


@bp.post("/keys")
def create_key():
    """Create a key and show its secret, this once: it is never stored or shown again."""
    form = NewKeyForm()
    if not form.validate():
        return _list_page(form, 400)
    try:
        key, secret = current_store().create_key(form.name.data, **form.store_fields())
    except StoreError as exc:
        form.name.errors.append(str(exc))
        return _list_page(form, 400)
    return render_template("admin/key_created.html", key=key, secret=secret)


@bp.route("/keys/<name>", methods=["GET", "POST"])
def edit_key(name: str):
    """Show a key's settings; on a POST, change them."""
    key = _key_or_404(name)
    form = KeyLimitsForm(data={"scope": key.scope, "models": " ".join(key.models), "rpm": key.rpm, "tpm": key.tpm,
                               "expires": key.expires_at.date() if key.expires_at else None})
    if form.is_submitted():
        if not form.validate():
            return render_template("admin/key_edit.html", key=key, form=form), 400
        try:
            current_store().update_key(name, **form.store_fields())
        except StoreError as exc:
            flash(str(exc), "error")
            return render_template("admin/key_edit.html", key=key, form=form), 400
        flash(f"Key '{name}' saved.", "ok")
        return redirect(url_for("admin.keys"))
    return render_template("admin/key_edit.html", key=key, form=form)


@bp.post("/keys/<name>/enabled/<int:enabled>")
def enable_key(name: str, enabled: int):
    """Enable or disable a key (a disabled key is refused until enabled again)."""
    return change_and_return(lambda: current_store().update_key(name, enabled=bool(enabled)), f"key named '{name}'",
                             f"Key '{name}' {'enabled' if enabled else 'disabled'}.", "admin.keys")


@bp.post("/keys/<name>/delete")
def delete_key(name: str):
    """Delete a key for good."""
    return change_and_return(lambda: current_store().delete_key(name), f"key named '{name}'",
                             f"Key '{name}' deleted.", "admin.keys")
