"""Let a signed-in member of a team make, rotate and revoke keys of their own: "My keys".

Such a key belongs to the member's team and is owned by them (their sign-on subject); it has the
generate scope and no permission beyond it, and, as every key of a team, never gets more than its
team (its models must match the team's too, and the team's limits bind it). A member sees, rotates
and revokes their own keys alone, and owns at most ``admin.max_keys_per_member`` of them. Such a key
works while the identity provider vouches that its owner is in its team (``access.membership``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app, flash, redirect, render_template, session, url_for

from ollama_proxy.blueprints.admin.base import bp, change_and_return, signed_in
from ollama_proxy.blueprints.admin.forms import MyKeyForm, RotateKeyForm
from ollama_proxy.blueprints.admin.keys import create_and_show, lapsed, shown_secret
from ollama_proxy.blueprints.admin.roles import current_team
from ollama_proxy.blueprints.admin.shown_secrets import hold_secret
from ollama_proxy.errors import Forbidden, NotFound
from ollama_proxy.store import Missing, current_store


def _owner_and_team() -> tuple[str, str]:
    """Who is signed in (their subject) and their team; 403 for someone in no team, or signed in by password."""
    subject, team = session.get("subject"), current_team()
    if not subject or not team:
        raise Forbidden("My keys are for people the identity provider puts in a team; you are in none.")
    return subject, team


def _own_key(name: str):
    """The key ``name`` if it is the signed-in person's own, in their team; 404 if none, 403 if another's."""
    owner, team = _owner_and_team()
    key = current_store().get_key(name)
    if key is None:
        raise NotFound(f"no key named '{name}'")
    if key.owner != owner or key.team != team:
        raise Forbidden(f"The key '{name}' is not yours.")
    return key


def _page(form: MyKeyForm, status: int = 200):
    owner, team = _owner_and_team()
    store = current_store()
    keys = store.list_keys(team=team, owner=owner)
    return render_template("admin/my_keys.html", keys=keys, lapsed=lapsed(keys, datetime.now(timezone.utc)),
                           form=form, team=team, team_settings=store.get_team(team),
                           rotation=RotateKeyForm(formdata=None)), status


@bp.get("/my-keys")
def my_keys():
    """List the signed-in person's own keys, with the form to make one."""
    return _page(MyKeyForm())


@bp.post("/my-keys")
def create_my_key():
    """Make a key of one's own in one's team, then show its secret once (as the keys page does)."""
    owner, team = _owner_and_team()
    form = MyKeyForm()
    if not form.validate():
        return _page(form, 400)
    most = current_app.config["SETTINGS"].admin.max_keys_per_member
    return create_and_show(form, _page, "admin.my_key_created", team=team, owner=owner, max_owned=most,
                           **form.store_fields())


@bp.get("/my-keys/<name>/created")
def my_key_created(name: str):
    """Show a new key of one's own with its secret, once."""
    secret = shown_secret(name)
    return render_template("admin/my_key_created.html", key=_own_key(name), secret=secret)


@bp.post("/my-keys/<name>/revoke")
def revoke_my_key(name: str):
    """Revoke (delete) a key of one's own: clients using it are refused from then on."""
    _own_key(name)
    return change_and_return(lambda: current_store().delete_key(name, by=signed_in()), f"key named '{name}'",
                             f"Key '{name}' revoked.", "admin.my_keys")


@bp.post("/my-keys/<name>/rotate")
def rotate_my_key(name: str):
    """Give a key of one's own a new secret, shown once as a new key's; the old one works for the grace given."""
    _own_key(name)
    rotation = RotateKeyForm()
    if not rotation.validate():
        flash(f"Key '{name}' not rotated: {'; '.join(rotation.grace.errors) or 'the form expired'}", "error")
        return _page(MyKeyForm(formdata=None), 400)
    try:
        _, secret = current_store().rotate_key(name, by=signed_in(), grace=rotation.grace_span())
    except Missing:
        raise NotFound(f"no key named '{name}'") from None
    hold_secret(session, current_store(), name, secret, current_app.config["SETTINGS"].admin.secret_shown_within)
    return redirect(url_for("admin.my_key_rotated", name=name), 303)


@bp.get("/my-keys/<name>/rotated")
def my_key_rotated(name: str):
    """Show a key of one's own with its new secret, once, and until when its old one works."""
    secret = shown_secret(name)  # first: a held secret never outlives this page
    return render_template("admin/my_key_created.html", key=_own_key(name), secret=secret, rotated=True,
                           now=datetime.now(timezone.utc))
