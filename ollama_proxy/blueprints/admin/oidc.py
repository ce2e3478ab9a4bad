"""Sign in with an OpenID Connect provider: the authorization code flow with PKCE (S256), through Authlib.

The login page's button links to ``/admin/login/oidc``, which reads the provider's discovery
document (once per worker, through the client ``identity.provider`` registers), keeps a state, a
nonce and a PKCE verifier in the signed session cookie, and sends the browser to the provider. The
provider sends it back to ``/admin/login/oidc/callback`` with a code, which is traded for tokens;
the ID token's signature (the provider's published keys), issuer, audience, expiry and nonce are
all checked before its claims are read (``identity.claims``) for a role. Every way this can fail
ends on the login form, in the audit trail as a failed sign-in, and in the log; nothing about it
starts a session. A sign-in also confirms the person's membership in the store
(``store.members``), with the refresh token, if the provider gave one, sealed
(``identity.refresh_tokens``): it lets ``identity.recheck`` ask again while they are away.

The button is a link, not a form: the page's content security policy allows forms to reach this
site alone (``form-action 'self'``), and browsers hold a form's redirects to it, which would stop
the way to the provider. Starting a sign-in changes nothing here, and the state, bound to this
browser's session, keeps anyone else's code from finishing it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from authlib.common.errors import AuthlibBaseError
from flask import current_app, redirect, render_template, request, session, url_for
from joserfc.errors import JoseError

from ollama_proxy.blueprints.admin.base import bp, landing
from ollama_proxy.blueprints.admin.login import UNKNOWN_USER, login_page, record
from ollama_proxy.blueprints.admin.session import start_oidc_session
from ollama_proxy.config.identity import OidcSettings
from ollama_proxy.errors import NotFound
from ollama_proxy.identity.claims import Grant, claims_options, grant, person
from ollama_proxy.identity.provider import CLIENT, CLIENT_NAME, discovery_problem, discovery_url
from ollama_proxy.identity.refresh_tokens import seal
from ollama_proxy.identity.roles import LABELS
from ollama_proxy.store import Actor, DatabaseError, current_store

log = logging.getLogger(__name__)
NEXT = "oidc_next"  # the page asked for before signing in, kept in the session across the provider's pages
STATE_PREFIX = f"_state_{CLIENT_NAME}_"  # where Authlib keeps a sign-in's state, nonce and PKCE verifier
# Authlib's failures (a state that does not match, the provider's error answer, an ID token refused) and
# the HTTP ones beneath it: requests' exceptions are OSErrors, a body that is no JSON a ValueError.
REFUSED = (AuthlibBaseError, JoseError)
UNREACHABLE = (OSError, ValueError)
REASON_LENGTH = 300  # what the audit trail keeps of why a sign-in failed


class SignInFailed(Exception):
    """Single sign-on did not end with a verified ID token: ``reason`` says why, ``status`` how to answer."""

    def __init__(self, reason: str, status: int = 401):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def printable(reason: str) -> str:
    """``reason`` fit for one log line and the audit trail: a callback's query (the provider's error
    description) is anyone's to write, so no control character passes, and it is cut short."""
    return "".join(c if c.isprintable() else " " for c in reason)[:REASON_LENGTH]


def _client():
    return current_app.extensions[CLIENT]


def _oidc() -> OidcSettings:
    oidc = current_app.config["SETTINGS"].admin.oidc
    if not oidc.enabled:
        raise NotFound("no identity provider is configured (admin.oidc)")
    return oidc


@bp.get("/login/oidc")
def oidc_start():
    """Send the browser to the identity provider, remembering where it wanted to go."""
    oidc = _oidc()
    try:
        problem = discovery_problem(_client().load_server_metadata(), oidc)
    except UNREACHABLE as exc:
        problem = f"its discovery document could not be read: {exc}"
    if problem is not None:
        log.error("single sign-on is not possible: %s (%s)", problem, discovery_url(oidc.issuer))
        return login_page("Signing in with the identity provider is not possible right now; see the error log.",
                          502)
    for key in [key for key in session if key.startswith(STATE_PREFIX)]:
        session.pop(key)  # one sign-in at a time per browser: the cookie does not grow with each click
    session[NEXT] = request.args.get("next", "")
    return _client().authorize_redirect(oidc.redirect_url or url_for("admin.oidc_callback", _external=True))


@bp.get("/login/oidc/callback")
def oidc_callback():
    """Check the provider's answer; start a session with the role its claims give, or refuse."""
    oidc = _oidc()
    client_address = request.remote_addr or "-"
    wanted = session.pop(NEXT, "") or None
    try:
        claims, refresh_token = verified_claims(oidc)
    except SignInFailed as exc:
        reason = printable(exc.reason)
        log.warning("single sign-on failed from %s: %s", client_address, reason)
        record(Actor(UNKNOWN_USER, "oidc", client_address), "sign-in failed", {"reason": reason})
        return login_page("Signing in with the identity provider failed; try again.", exc.status)
    name, granted = person(claims, oidc), grant(claims, oidc)
    actor = Actor(name, "oidc", client_address)
    now = datetime.now(timezone.utc)
    if granted is None:
        log.warning("single sign-on of %r from %s refused: no role and no team", name, client_address)
        record(actor, "sign-in failed", {"subject": claims["sub"], "reason": "no role and no team"})
        _forget(claims["sub"], oidc, now)
        message = (f"You are signed in as {name} at the identity provider, but it gives you no role and no team "
                   "here. Ask an administrator for access.")
        return render_template("admin/error.html", status=403, message=message), 403
    detail = {"subject": claims["sub"], "role": granted.role, "team": granted.team}
    if not _remember(claims["sub"], name, granted, refresh_token, now) or not record(actor, "sign-in", detail):
        return login_page("Signing in is not possible right now: the store cannot be reached.", 503)
    start_oidc_session(session, oidc, user=name, subject=claims["sub"], role=granted.role, team=granted.team,
                       checked=now.timestamp())
    log.info("single sign-on of %r (%s%s) from %s", name, LABELS[granted.role],
             f" of {granted.team}" if granted.team else "", client_address)
    return redirect(landing(granted.role, wanted))


def _remember(subject: str, name: str, granted: Grant, refresh_token: str | None, now: datetime) -> bool:
    """Confirm the person's membership in the store, keeping the refresh token sealed; say whether it is there."""
    sealed = seal(current_app.secret_key, refresh_token) if refresh_token else None
    try:
        current_store().confirm_member(subject, name=name, role=granted.role, team=granted.team,
                                       refresh_token=sealed, now=now)
    except DatabaseError as exc:
        log.error("the membership of %r could not be kept: %s", name, exc.reason)
        return False
    return True


def _forget(subject: str, oidc: OidcSettings, now: datetime) -> None:
    """Stop the keys of someone who signs in with no role and no team: the provider no longer vouches for them."""
    try:
        current_store().lose_member(subject, "signed in with no role and no team",
                                    by=Actor("identity provider", "oidc", oidc.issuer), now=now)
    except DatabaseError as exc:
        log.error("the membership of %r could not be ended: %s", subject, exc.reason)


def verified_claims(oidc: OidcSettings) -> tuple[dict, str | None]:
    """Trade the callback's code for tokens; return the ID token's claims once every check passed, and the
    refresh token, if the provider gave one."""
    try:
        token = _client().authorize_access_token(claims_options=claims_options(oidc), leeway=oidc.leeway)
    except REFUSED as exc:  # a state that is not ours, the provider's error, a bad ID token
        raise SignInFailed(f"refused: {type(exc).__name__}: {exc}") from None
    except UNREACHABLE as exc:
        raise SignInFailed(f"the provider's token endpoint failed: {exc}", 502) from None
    claims = token.get("userinfo")  # Authlib's name for the ID token's verified claims
    if not claims or not claims.get("sub"):
        raise SignInFailed("the provider answered without an ID token")
    return dict(claims), token.get("refresh_token")
