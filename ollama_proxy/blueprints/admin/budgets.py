"""Show and set budgets: each with what was spent this period and what is left; a spent soft one flagged.

A team admin sees its own team's budget, its keys' and their owners', and sets and clears its keys' and its
team's people's (not its own: an admin's to set).
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, render_template, request, url_for

from ollama_proxy.blueprints.admin.base import bp, signed_in
from ollama_proxy.blueprints.admin.forms import BudgetForm
from ollama_proxy.blueprints.admin.owners import check_person
from ollama_proxy.blueprints.admin.roles import check_scope, team_scope
from ollama_proxy.errors import Forbidden
from ollama_proxy.store import StoreError, current_store


def budget_standings() -> list[dict]:
    """Every budget in its current period (a team admin's: its team's), as the budgets page and the dashboard
    show them."""
    zone = ZoneInfo(current_app.config["SETTINGS"].budgets.timezone)
    return current_store().standings(zone, datetime.now(timezone.utc), team=team_scope())


def check_holder(holder_kind: str, holder: str) -> None:
    """Refuse (403) a team admin's budget of a team, of a person not of its team (or itself), or of another
    team's key (or of no key at all).

    A team's own budget is the department's word on what the team may spend: an admin sets and clears it,
    and its team admin shares it out among the team's keys.
    """
    if team_scope() is None:
        return
    if holder_kind == "team":
        check_scope(holder, f"The team '{holder}'")
        raise Forbidden("A team's own budget is set by an admin; a team admin gives budgets to the team's keys.")
    if holder_kind == "person":
        return check_person(holder)
    key = current_store().get_key(holder)
    check_scope(key.team if key else None, f"The key '{holder}'")


def _page(form: BudgetForm, status: int = 200):
    sets_teams = team_scope() is None  # a team admin gives budgets to its keys and people, not to its team
    if not sets_teams:
        form.holder_kind.choices = [choice for choice in form.holder_kind.choices if choice.value != "team"]
    return render_template("admin/budgets.html", standings=budget_standings(), form=form, sets_teams=sets_teams,
                           zone=current_app.config["SETTINGS"].budgets.timezone), status


@bp.get("/budgets")
def budgets():
    return _page(BudgetForm())


@bp.post("/budgets")
def set_budget():
    """Give a team, a key or a person a budget (replacing the one it had for that period and unit)."""
    form = BudgetForm()
    if not form.validate():
        return _page(form, 400)
    check_holder(form.holder_kind.data, form.holder.data)
    try:
        current_store().set_budget(form.holder_kind.data, form.holder.data, period=form.period.data,
                                   unit=form.unit.data, amount=form.amount.data, mode=form.mode.data, by=signed_in())
    except StoreError as exc:
        form.holder.errors.append(str(exc))
        return _page(form, 400)
    flash(f"Budget of {form.holder_kind.data} '{form.holder.data}' set.", "ok")
    return redirect(url_for("admin.budgets"), 303)


@bp.post("/budgets/clear")
def clear_budget():
    """Remove one budget, named by its holder, period and unit."""
    fields = {name: request.form.get(name, "") for name in ("holder_kind", "holder", "period", "unit")}
    check_holder(fields["holder_kind"], fields["holder"])
    try:
        current_store().clear_budgets(fields["holder_kind"], fields["holder"], period=fields["period"] or None,
                                      unit=fields["unit"] or None, by=signed_in())
    except StoreError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.budgets"))
    flash(f"Budget of {fields['holder_kind']} '{fields['holder']}' cleared.", "ok")
    return redirect(url_for("admin.budgets"))
