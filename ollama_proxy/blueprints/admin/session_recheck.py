"""Keep a single sign-on session's role no older than ``admin.oidc.recheck``.

A session holds when its sign-in confirmed the role (``session.CHECKED``). Past ``recheck``, each
admin page takes the role and team of the person's member row (``store.members``) while the
provider confirmed them within ``recheck`` (a worker's background re-check, a sign-in in another
browser); else it asks the provider now, with the kept refresh token (``identity.recheck.recheck_member``);
``identity.session_checks`` decides which.
Someone the provider no longer vouches for loses the session at once, with a 403 page saying so;
someone it cannot confirm now (no refresh token, the provider unreachable) signs in again through
the provider, which may let them through without its form while its own session lasts.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import current_app, redirect, render_template, request, url_for

from ollama_proxy.blueprints.admin.session import CHECKED
from ollama_proxy.config.identity import OidcSettings
from ollama_proxy.identity.provider import CLIENT
from ollama_proxy.identity.recheck import BUSY, recheck_member
from ollama_proxy.identity.session_checks import ADOPT, ENDED, STALE, is_due, verdict
from ollama_proxy.store import current_store

log = logging.getLogger(__name__)

ENDED_MESSAGE = ("The identity provider no longer gives you a role or a team here ({why}), so your session has "
                 "ended. Ask an administrator if that is a mistake.")


def recheck_session(session, oidc: OidcSettings):
    """Re-check the role of this single sign-on ``session`` if it is due; return the page to answer with instead
    of the one asked for, or None to go on (with the role the provider gives now)."""
    now = datetime.now(timezone.utc)
    if not is_due(session.get(CHECKED), now.timestamp(), oidc.recheck):
        return None
    store, subject = current_store(), str(session.get("subject", ""))
    member = store.get_member(subject)
    if verdict(member, now, oidc.recheck) == STALE:
        asked = recheck_member(store, current_app.extensions[CLIENT], oidc, current_app.secret_key, subject, now)
        if asked == BUSY:
            return None  # another worker is asking the provider this moment: this one page keeps the role
        member = store.get_member(subject)
    decided = verdict(member, now, oidc.recheck)
    if decided == ADOPT:
        # Only a change is written: a changed session is signed anew, which restarts its lifetime.
        if (session.get("role"), session.get("team")) != (member.role, member.team):
            session.update(role=member.role, team=member.team)
        return None
    session.clear()
    if decided == ENDED:
        log.warning("the session of %r ended: the identity provider no longer vouches for them (%s)", subject,
                    member.note)
        message = ENDED_MESSAGE.format(why=member.note)
        return render_template("admin/error.html", status=403, message=message), 403
    return redirect(url_for("admin.oidc_start", next=request.full_path.rstrip("?")))
