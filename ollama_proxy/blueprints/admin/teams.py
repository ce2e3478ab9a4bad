"""Manage teams: create, change, delete (refused while keys belong to one, naming them)."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from ollama_proxy.blueprints.admin.base import bp, change_and_return, signed_in
from ollama_proxy.blueprints.admin.forms import NewTeamForm, TeamForm
from ollama_proxy.errors import NotFound
from ollama_proxy.store import StoreError, current_store


def team_names() -> tuple[str, ...]:
    """The teams a key may be put in, for the key forms."""
    return tuple(team.name for team in current_store().list_teams())


def _list_page(form: NewTeamForm, status: int = 200):
    store = current_store()
    members: dict[str, list[str]] = {}
    for key in store.list_keys():
        if key.team is not None:
            members.setdefault(key.team, []).append(key.name)
    return render_template("admin/teams.html", teams=store.list_teams(), members=members, form=form), status


@bp.get("/teams")
def teams():
    """List every team and its keys, with the form to create one."""
    return _list_page(NewTeamForm())


@bp.post("/teams")
def create_team():
    form = NewTeamForm()
    if not form.validate():
        return _list_page(form, 400)
    try:
        current_store().create_team(form.name.data, by=signed_in(), **form.store_fields())
    except StoreError as exc:
        form.name.errors.append(str(exc))
        return _list_page(form, 400)
    flash(f"Team '{form.name.data}' created.", "ok")
    return redirect(url_for("admin.teams"), 303)


@bp.route("/teams/<name>", methods=["GET", "POST"])
def edit_team(name: str):
    """Show a team's settings; on a POST, change them."""
    team = current_store().get_team(name)
    if team is None:
        raise NotFound(f"no team named '{name}'")
    form = TeamForm(data={"weight": team.weight, "klass": team.klass, "models": " ".join(team.models),
                          "rpm": team.rpm, "tpm": team.tpm})
    if form.is_submitted():
        if not form.validate():
            return render_template("admin/team_edit.html", team=team, form=form), 400
        try:
            current_store().update_team(name, by=signed_in(), **form.store_fields())
        except StoreError as exc:
            flash(str(exc), "error")
            return render_template("admin/team_edit.html", team=team, form=form), 400
        flash(f"Team '{name}' saved.", "ok")
        return redirect(url_for("admin.teams"))
    return render_template("admin/team_edit.html", team=team, form=form)


@bp.post("/teams/<name>/delete")
def delete_team(name: str):
    """Delete a team no key belongs to; say which keys do, if any."""
    try:
        return change_and_return(lambda: current_store().delete_team(name, by=signed_in()), f"team named '{name}'",
                                 f"Team '{name}' deleted.", "admin.teams")
    except StoreError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.teams"))
