"""Declare sign-in to the admin page with an OpenID Connect provider: the ``admin.oidc`` section."""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError, validate

from ollama_proxy.config.checks import AT_LEAST_0, SECONDS, NonEmpty
from ollama_proxy.config.declare import setting

# An issuer is an https URL (http for a provider on the same host or a test), or nothing: sign-on off.
ISSUER = validate.Regexp(r"^(https?://[^\s?#]+)?$", error="not an issuer URL (https://sso.example.com/realms/acme)")
CALLBACK = validate.Regexp(r"^(https?://\S+)?$", error="not an http(s) URL")


@dataclass(frozen=True)
class OidcSettings:
    issuer: str = setting(
        "", validate=ISSUER,
        help="the identity provider's issuer, as its `/.well-known/openid-configuration` names it (Keycloak: "
             "`https://sso.example.com/realms/acme`); empty: no single sign-on")
    client_id: str = setting("", help="the client id the provider knows this proxy by")
    client_secret: str = setting(
        "", env="OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET", repr=False,
        help="the client's secret (sent with HTTP basic auth to the token endpoint); empty: a public client, "
             "PKCE alone")
    scopes: tuple[NonEmpty, ...] = setting(
        ("openid", "profile", "email", "offline_access"),
        help="scopes asked for (`openid` is added if missing); add the one that brings `roles_claim` if the "
             "provider needs it; `offline_access` brings the refresh token that lets the proxy re-check a "
             "person's membership while they are away (docs/oidc.md)")
    label: str = setting(
        "single sign-on", validate=validate.Length(min=1, max=60),
        help='names the provider on the login page\'s button, "Sign in with <label>"')
    redirect_url: str = setting(
        "", validate=CALLBACK,
        help="the callback to register with the provider and send it; empty: `/admin/login/oidc/callback` on the "
             "host and scheme the browser used (set it behind a proxy that does not pass them on)")
    username_claim: str = setting(
        "preferred_username", validate=validate.Length(min=1),
        help="the claim that names a person in the audit trail and the page; missing: `email`, then `sub`")
    roles_claim: str = setting(
        "groups", validate=validate.Length(min=1),
        help="the claim that carries the roles or groups (a list of strings, or one string)")
    admin_values: tuple[NonEmpty, ...] = setting((), help="values of `roles_claim` that make an admin")
    viewer_values: tuple[NonEmpty, ...] = setting(
        (), help="values of `roles_claim` that make a viewer: every page, read only")
    team_admin_prefix: str = setting(
        "team_admin:",
        help="a value `<prefix><team>` of `roles_claim` makes a team admin of that team (`team_admin:research`); "
             "empty: none do")
    team_admin_values: tuple[NonEmpty, ...] = setting(
        (), help="values of `roles_claim` that make a team admin of the team `team_claim` names")
    member_prefix: str = setting(
        "team:",
        help="a value `<prefix><team>` of `roles_claim` makes a member of that team (`team:research`), who may "
             "make keys of their own on the My keys page; empty: none do")
    team_claim: str = setting(
        "", help="a claim that names the person's team (a string, or a list whose first string counts); with no "
                 "role, it makes them a member of it; empty: none")
    timeout: float = setting(
        10.0, validate=SECONDS,
        help="seconds to wait for the provider: its discovery document, its keys, its token endpoint")
    leeway: int = setting(
        60, validate=AT_LEAST_0,
        help="seconds an ID token's `exp`, `iat` and `nbf` may be off, for clocks that differ")
    recheck: float = setting(
        900.0, validate=SECONDS,
        help="seconds a signed-in person's role, and the membership of everyone who owns keys, go unchecked at "
             "the provider: past it, a session's next page asks the provider again (with the kept refresh "
             "token, else by signing in again), and a worker asks it for every key owner (docs/oidc.md)")
    membership_max_age: float = setting(
        86400.0, validate=SECONDS,
        help="seconds a key with an owner (made on **My keys** or the keys page, or a service key) works after "
             "the provider last confirmed that its owner is in its team, or an admin (a sign-in, or a re-check); "
             "past it the key is refused until one confirms it again. At least `recheck`")

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)


def complete(oidc: OidcSettings) -> None:
    """Refuse an issuer without a client id (sign-on would be on, and fail at every try), and a bound on a
    membership shorter than the time between its re-checks (every key would lapse between two)."""
    if oidc.enabled and not oidc.client_id:
        raise ValidationError("an issuer needs a client_id")
    if oidc.membership_max_age < oidc.recheck:
        raise ValidationError("membership_max_age must be at least recheck")
