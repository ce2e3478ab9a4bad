"""Manage API keys: create (the secret shown once), change, rotate (a new secret, shown once), disable, delete.

A team admin sees and changes its own team's keys alone, and cannot give one the manage scope
(pulling and deleting models acts on every team's), nor change a key's chat log (its forms have no
such field: a new key follows chat_logs.enabled, an edited one keeps its own).
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app, flash, redirect, render_template, request, session, url_for

from ollama_proxy.access.membership import lapses
from ollama_proxy.blueprints.admin.base import bp, change_and_return, signed_in
from ollama_proxy.blueprints.admin.forms import KeyLimitsForm, NewKeyForm, RotateKeyForm, chat_log_choice
from ollama_proxy.blueprints.admin.owners import Unowned, owner_fields, people_in_scope
from ollama_proxy.blueprints.admin.roles import check_scope, team_scope
from ollama_proxy.blueprints.admin.shown_secrets import hold_secret, take_secret
from ollama_proxy.blueprints.admin.teams import team_names
from ollama_proxy.config.access import token_names
from ollama_proxy.errors import Forbidden, NotFound
from ollama_proxy.store import Missing, StoreError, current_store


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
    hold_secret(session, current_store(), key.name, secret, current_app.config["SETTINGS"].admin.secret_shown_within)
    return redirect(url_for(created, name=key.name), 303)


def shown_secret(name: str) -> str | None:
    """Take the secret of the new key ``name`` that this session holds, if any: the created-key pages show it once."""
    return take_secret(session, current_store(), name)


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


def _chat_log_locked() -> bool:
    """Whether this session's key forms go without the chat log choice: whose chats are logged is a privacy
    decision for the site's admins, not a team admin's."""
    return team_scope() is not None


def lapsed(keys, now: datetime) -> dict[str, str]:
    """Why each owned key among ``keys`` no longer works, by name: its owner's membership lapsed."""
    if not any(key.owner for key in keys):
        return {}
    max_age = current_app.config["SETTINGS"].admin.oidc.membership_max_age
    return lapses(keys, current_store().list_members(), now, max_age)


def _list_page(form: NewKeyForm, status: int = 200):
    keys, now = current_store().list_keys(team=team_scope()), datetime.now(timezone.utc)
    return render_template("admin/keys.html", keys=keys, form=form, now=now, lapsed=lapsed(keys, now),
                           chat_logs_enabled=_chat_logs_enabled()), status


@bp.get("/keys")
def keys():
    """List every key (a team admin: its team's), with the form to create one."""
    return _list_page(NewKeyForm(chat_logs_enabled=_chat_logs_enabled(), teams=_teams(), team=team_scope() or "",
                                 chat_log_locked=_chat_log_locked(), people=people_in_scope()))


@bp.post("/keys")
def create_key():
    """Create a key, then redirect to the page that shows its secret this once.

    Redirecting keeps a reload from sending the form again (and creating a second key). The
    secret crosses the redirect sealed in the store, never in a URL or the cookie, and the page
    that shows it removes it (``shown_secrets``). The key is owned (``owners``): by the person signed in,
    or by the person a service key names responsible.
    """
    form = NewKeyForm(chat_logs_enabled=_chat_logs_enabled(), teams=_teams(), chat_log_locked=_chat_log_locked(),
                      people=people_in_scope())
    if not form.validate():
        return _list_page(form, 400)
    fields = _check_fields(form.store_fields())
    try:
        fields.update(owner_fields(form.service.data, form.responsible.data, fields.get("team")))
    except Unowned as exc:
        form.responsible.errors.append(str(exc))
        return _list_page(form, 400)
    return create_and_show(form, _list_page, "admin.key_created", **fields)


@bp.get("/keys/<name>/created")
def key_created(name: str):
    """Show a new key with its secret, once: a reload shows the key without it."""
    secret = shown_secret(name)  # first: a held secret never outlives this page
    key = _key_or_404(name)
    return render_template("admin/key_created.html", key=key, secret=secret,
                           chat_logs_enabled=_chat_logs_enabled())


def _settings_form(key) -> KeyLimitsForm:
    """The form of a key's settings, filled with them (a POST's fields win)."""
    return KeyLimitsForm(data={"scope": key.scope, "models": " ".join(key.models), "rpm": key.rpm, "tpm": key.tpm,
                               "expires": key.last_day(), "chat_log": chat_log_choice(key.chat_log),
                               "weight": key.weight, "klass": key.klass, "trusted_frontend": key.trusted_frontend,
                               "web": key.web, "cloud": key.cloud, "team": key.team or ""},
                         chat_logs_enabled=_chat_logs_enabled(), kept_expiry=key.expires_at, teams=_teams(),
                         chat_log_locked=_chat_log_locked())


@bp.route("/keys/<name>", methods=["GET", "POST"])
def edit_key(name: str):
    """Show a key's settings; on a POST, change them."""
    key = _key_or_404(name)
    form = _settings_form(key)
    if form.is_submitted():
        if not form.validate():
            return _edit_page(key, form, 400)
        try:
            current_store().update_key(name, by=signed_in(), **_check_fields(form.store_fields(), key))
        except StoreError as exc:
            flash(str(exc), "error")
            return _edit_page(key, form, 400)
        flash(f"Key '{name}' saved.", "ok")
        return redirect(url_for("admin.keys"))
    return _edit_page(key, form)


def _edit_page(key, form: KeyLimitsForm, status: int = 200, rotation: RotateKeyForm | None = None):
    return render_template("admin/key_edit.html", key=key, form=form, rotation=rotation or RotateKeyForm(formdata=None),
                           chat_logs_enabled=_chat_logs_enabled(), now=datetime.now(timezone.utc),
                           people=people_in_scope() if key.service else ()), status


@bp.post("/keys/<name>/responsible")
def hand_over_key(name: str):
    """Name another person responsible for a service key (its owner), as ``owners`` allows one at its making."""
    key = _key_or_404(name)
    try:
        owner = owner_fields(True, request.form.get("responsible", ""), key.team)
        owned = [other for other in current_store().list_keys(owner=owner["owner"]) if other.name != name]
        if len(owned) >= owner.get("max_owned", len(owned) + 1):
            raise Unowned(f"'{owner['owner']}' owns {owner['max_owned']} keys already (admin.max_keys_per_member)")
        current_store().update_key(name, owner=owner["owner"], by=signed_in())
    except (Unowned, StoreError) as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.edit_key", name=name) + "#responsible")
    flash(f"Key '{name}' handed over to '{owner['owner']}'.", "ok")
    return redirect(url_for("admin.edit_key", name=name))


@bp.post("/keys/<name>/rotate")
def rotate_key(name: str):
    """Give a key a new secret, then redirect to the page that shows it once, as a new key's.

    The key stays itself: its settings, team, budgets and usage. Its old secret works for the grace
    period the form gives, then never again.
    """
    key = _key_or_404(name)
    rotation = RotateKeyForm()
    if not rotation.validate():
        return _edit_page(key, _settings_form(key), 400, rotation)
    try:
        _, secret = current_store().rotate_key(name, by=signed_in(), grace=rotation.grace_span())
    except Missing:
        raise NotFound(f"no key named '{name}'") from None
    hold_secret(session, current_store(), name, secret, current_app.config["SETTINGS"].admin.secret_shown_within)
    return redirect(url_for("admin.key_rotated", name=name), 303)


@bp.get("/keys/<name>/rotated")
def key_rotated(name: str):
    """Show a rotated key's new secret, once, and until when its old one works."""
    secret = shown_secret(name)  # first: a held secret never outlives this page
    key = _key_or_404(name)
    return render_template("admin/key_created.html", key=key, secret=secret, rotated=True,
                           now=datetime.now(timezone.utc), chat_logs_enabled=_chat_logs_enabled())


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
