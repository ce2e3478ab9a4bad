"""List the backends' models; add, change and remove the stored aliases and overrides."""

from __future__ import annotations

import json

from flask import current_app, flash, redirect, render_template, url_for

from ollama_proxy.blueprints.admin.base import bp, change_and_return, signed_in
from ollama_proxy.blueprints.admin.forms import AliasForm, OverrideForm
from ollama_proxy.errors import ProxyError
from ollama_proxy.routing.names import canonical, same_model
from ollama_proxy.store import StoreError, current_store


def backend_models() -> tuple[list[dict], str | None]:
    """Return every backend's models, named as /api/tags lists them (``provider:model``), and any failure."""
    problems = []
    models = []
    for server, listing in current_app.extensions["ollama_proxy.pool"].gather("/api/tags"):
        if isinstance(listing, ProxyError):
            problems.append(f"{server.name}: {listing.message}")
            continue
        entries = listing.get("models") if isinstance(listing.get("models"), list) else []
        models += [dict(model, backend=server.name) for model in entries if isinstance(model, dict)]
    for provider in current_app.extensions["ollama_proxy.providers"].values():
        try:
            models += [dict(model, backend=provider.name) for model in provider.tags()["models"]]
        except ProxyError as exc:
            problems.append(f"{provider.name}: {exc.message}")
    return models, "; ".join(problems) or None


def check_alias(alias: str, target: str, known: set[str]) -> str | None:
    """Say what is wrong with an alias, or None: it must not hide a model, and must name one."""
    known = {canonical(name) for name in known}
    if same_model(alias, target):
        return "an alias cannot name itself"
    if canonical(alias) in known:
        return f"'{alias}' is a model a backend serves: an alias would hide it"
    if known and canonical(target) not in known:
        return f"no backend serves '{target}'"
    return None


def _page(alias_form=None, override_form=None, status: int = 200):
    store = current_store()
    models, problem = backend_models()
    configured = current_app.config["SETTINGS"].models
    return render_template("admin/models.html", models=models, problem=problem, aliases=store.list_aliases(),
                           overrides=store.list_overrides(), file_aliases=configured.aliases,
                           file_overrides=configured.overrides, alias_form=alias_form or AliasForm(prefix="alias"),
                           override_form=override_form or OverrideForm(prefix="override",
                                                                       data={"defaults": "{}", "enforce": "{}"}),
                           json=json), status


@bp.get("/models")
def models():
    """Show every model, alias and override."""
    return _page()


@bp.post("/models/aliases")
def set_alias():
    """Add or change an alias."""
    form = AliasForm(prefix="alias")
    if form.validate():
        known = {model["name"] for model in backend_models()[0]}
        problem = check_alias(form.alias.data, form.target.data, known)
        if problem is None:
            try:
                current_store().set_alias(form.alias.data, form.target.data, by=signed_in())
            except StoreError as exc:
                problem = str(exc)
        if problem is None:
            flash(f"Alias '{form.alias.data}' → '{form.target.data}' saved.", "ok")
            return redirect(url_for("admin.models"))
        form.alias.errors.append(problem)
    return _page(alias_form=form, status=400)


def _removed(remove, what: str):
    """Run ``remove`` (a store deletion), then go back to the models page saying what went."""
    return change_and_return(remove, what, f"{what[0].upper()}{what[1:]} removed.", "admin.models")


@bp.post("/models/aliases/<path:alias>/delete")
def delete_alias(alias: str):
    """Remove an alias."""
    return _removed(lambda: current_store().delete_alias(alias, by=signed_in()), f"alias '{alias}'")


@bp.post("/models/overrides")
def set_override():
    """Add or change a model's defaults and enforced fields."""
    form = OverrideForm(prefix="override")
    if form.validate():
        try:
            current_store().set_override(form.model.data, form.defaults.parsed, form.enforce.parsed,
                                              by=signed_in())
        except StoreError as exc:
            form.model.errors.append(str(exc))
        else:
            flash(f"Override for '{form.model.data}' saved.", "ok")
            return redirect(url_for("admin.models"))
    return _page(override_form=form, status=400)


@bp.post("/models/overrides/<path:model>/delete")
def delete_override(model: str):
    """Remove a model's override."""
    return _removed(lambda: current_store().delete_override(model, by=signed_in()), f"override for '{model}'")
