"""Ask the identity provider again about a person who signed in: the refresh token grant (RFC 6749, section 6).

The provider answers a kept refresh token with fresh tokens (OpenID Connect Core, 12.2). The claims
of the new ID token, checked as a sign-in's are (signature, issuer, audience, times), or of the
userinfo endpoint when it sends none, give the person's role and team again (``claims.grant``),
and the store's member row (``store.members``) takes what it said:

- confirmed: the claims give a role or a team; the row takes them, and a rotated refresh token;
- lost: the provider refuses the grant (``invalid_grant``: the person was disabled, their sign-in
  revoked, the token expired), or the claims give no role and no team; the person's keys stop and
  their sessions end (``member.lost`` in the audit trail);
- unsure: the provider could not be reached, or answered what cannot be trusted; the row notes it,
  and the keys hold until ``admin.oidc.membership_max_age`` after the last confirmation.

A re-check is claimed in the store first, so that one worker of one instance asks at a time: a
provider that rotates refresh tokens honours each once, and may revoke the grant on a second use.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import OAuthError
from joserfc.errors import JoseError

from ollama_proxy.config.identity import OidcSettings
from ollama_proxy.identity.claims import claims_options, grant, person
from ollama_proxy.identity.refresh_tokens import seal, unseal
from ollama_proxy.store import Actor, Store

log = logging.getLogger(__name__)

# A re-check may wait on the provider three times (the token, its keys, its userinfo): its claim outlasts them.
WAITS = 3
UNREACHABLE = (OSError, ValueError)  # requests' exceptions are OSErrors, a body that is no JSON a ValueError
CONFIRMED, LOST, UNSURE, NOTHING, BUSY = "confirmed", "lost", "unsure", "nothing to ask with", "busy"


class Revoked(Exception):
    """The provider no longer honours the grant: it vouches for the person no more."""


class Unsure(Exception):
    """The provider said nothing that settles whether it still vouches for the person."""


def renewed_claims(client, oidc: OidcSettings, refresh_token: str) -> tuple[dict, str | None]:
    """Trade ``refresh_token`` for fresh tokens; return the claims they bring and the refresh token the provider
    rotated to (None: keep the one used). Raise Revoked or Unsure."""
    try:
        # No scope: the grant's own (RFC 6749, section 6); the scopes asked at sign-in may hold one it dropped.
        token = client.fetch_access_token(grant_type="refresh_token", refresh_token=refresh_token, scope=None)
        if "id_token" in token:
            claims = client.parse_id_token(token, None, claims_options=claims_options(oidc), leeway=oidc.leeway)
        elif client.load_server_metadata().get("userinfo_endpoint"):
            claims = client.userinfo(token=token)
        else:
            raise Unsure("it answered with no ID token, and names no userinfo endpoint")
    except OAuthError as exc:  # the provider's words, quoted: no control character reaches a log line
        if exc.error == "invalid_grant":
            raise Revoked(f"refresh token refused: {exc.error}: {exc.description!r}") from None
        raise Unsure(f"it answered {exc.error!r}: {exc.description!r}") from None
    except (AuthlibBaseError, JoseError) as exc:  # the new ID token fails a check
        raise Unsure(f"its answer was refused: {type(exc).__name__}: {exc}") from None
    except UNREACHABLE as exc:
        raise Unsure(f"it could not be reached, or answered no JSON: {exc}") from None
    return dict(claims), token.get("refresh_token")


def recheck_member(store: Store, client, oidc: OidcSettings, secret_key: str, subject: str, now: datetime) -> str:
    """Re-check ``subject`` at the provider unless another worker is at it; record what it said, and return
    CONFIRMED, LOST, UNSURE, NOTHING (no refresh token to ask with) or BUSY."""
    sealed = store.claim_member_check(subject, now=now, until=now + timedelta(seconds=WAITS * oidc.timeout + 5))
    if sealed is None:
        member = store.get_member(subject)
        return BUSY if member is not None and member.renewable and member.lost_at is None else NOTHING
    refresh_token = unseal(secret_key, sealed)
    if refresh_token is None:
        store.note_member_check(subject, "the kept refresh token cannot be opened: admin.secret_key changed",
                                now=now, forget_token=True)
        return NOTHING
    try:
        claims, rotated = renewed_claims(client, oidc, refresh_token)
        if claims.get("sub") != subject:  # OpenID Connect Core 12.2: the same subject, or nothing said
            raise Unsure(f"it answered for another subject, {claims.get('sub')!r}")
    except Revoked as exc:
        return _lose(store, oidc, subject, str(exc), now)
    except Unsure as exc:
        log.warning("the identity provider could not re-check %r: %s", subject, exc)
        store.note_member_check(subject, f"the identity provider {exc}", now=now)
        return UNSURE
    granted = grant(claims, oidc)
    if granted is None:
        return _lose(store, oidc, subject, "its claims give no role and no team any more", now)
    store.confirm_member(subject, name=person(claims, oidc), role=granted.role, team=granted.team,
                         refresh_token=seal(secret_key, rotated) if rotated else sealed, now=now)
    return CONFIRMED


def _lose(store: Store, oidc: OidcSettings, subject: str, reason: str, now: datetime) -> str:
    log.warning("the identity provider no longer vouches for %r: %s", subject, reason)
    store.lose_member(subject, reason, by=Actor("identity provider", "oidc", oidc.issuer), now=now)
    return LOST
