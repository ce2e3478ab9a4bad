"""The admin web page at /admin: dashboard, scheduler, keys, teams, budgets, models, usage, audit, backends.

Server-rendered (Jinja templates under ``templates/admin/``, files under
``static/``). A session cookie signed with the admin secret key carries the
login; every form carries a CSRF token. One signs in with the admin password, or
with an OpenID Connect provider whose claims give a role (``roles.py``, ``identity/``). With
neither ``admin.password_hash`` nor ``admin.oidc`` the page is off and every
/admin path answers 404.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

# audit, budgets, keys, models, my_keys, pages, scheduler, teams and usage register their views on bp
from ollama_proxy.blueprints.admin import (  # noqa: F401
    audit,
    budgets,
    keys,
    login,
    models,
    my_keys,
    oidc,
    pages,
    scheduler,
    session,
    teams,
    usage,
)
from ollama_proxy.blueprints.admin.base import bp
from ollama_proxy.identity import provider, recheck_loop

__all__ = ["bp", "init_app"]


def init_app(app: Flask) -> None:
    """Register the admin page; sign its sessions and check its forms when it is on."""
    settings = app.config["SETTINGS"].admin
    app.register_blueprint(bp)
    if not settings.enabled:
        return  # said once at start, by the gunicorn master (deploy/gunicorn.conf.py)
    session.configure(app, settings)
    CSRFProtect(app)
    login.init_app(app)
    provider.init_app(app, settings.oidc)
    if settings.oidc.enabled:
        recheck_loop.init_app(app)  # its loop starts in each worker (deploy/gunicorn.conf.py)


