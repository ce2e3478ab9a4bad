"""Show and set budgets: each with what was spent this period and what is left; a spent soft one flagged."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, render_template, request, url_for

from ollama_proxy.blueprints.admin.base import bp, signed_in
from ollama_proxy.blueprints.admin.forms import BudgetForm
from ollama_proxy.store import StoreError, current_store


def budget_standings() -> list[dict]:
    """Every budget in its current period, as the budgets page and the dashboard show them."""
    zone = ZoneInfo(current_app.config["SETTINGS"].budgets.timezone)
    return current_store().standings(zone, datetime.now(timezone.utc))


def _page(form: BudgetForm, status: int = 200):
    return render_template("admin/budgets.html", standings=budget_standings(), form=form,
                           zone=current_app.config["SETTINGS"].budgets.timezone), status


@bp.get("/budgets")
def budgets():
    return _page(BudgetForm())


@bp.post("/budgets")
def set_budget():
    """Give a team or a key a budget (replacing the one it had for that period and unit)."""
    form = BudgetForm()
    if not form.validate():
        return _page(form, 400)
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
    try:
        current_store().clear_budgets(fields["holder_kind"], fields["holder"], period=fields["period"] or None,
                                      unit=fields["unit"] or None, by=signed_in())
    except StoreError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.budgets"))
    flash(f"Budget of {fields['holder_kind']} '{fields['holder']}' cleared.", "ok")
    return redirect(url_for("admin.budgets"))
