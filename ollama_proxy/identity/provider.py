"""Register the identity provider's client (Authlib's, for OpenID Connect), and judge its discovery document.

One client per app, kept in ``app.extensions[CLIENT]``: the admin page's sign-in
(``blueprints.admin.oidc``) sends people to the provider with it, and the re-checks
(``recheck``) trade refresh tokens with it. It reads the discovery document once per
worker, and asks the code with PKCE (S256) and ``openid`` among the scopes.
"""

from __future__ import annotations

from authlib.integrations.flask_client import OAuth
from flask import Flask

from ollama_proxy.config.identity import OidcSettings

CLIENT = "ollama_proxy.admin_oidc"  # the provider's Authlib client in ``app.extensions``
CLIENT_NAME = "oidc"
DISCOVERY = "/.well-known/openid-configuration"
NEEDED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + DISCOVERY


def scope_text(scopes: tuple[str, ...]) -> str:
    """The scopes asked for, ``openid`` first whether configured or not: without it there is no ID token."""
    return " ".join(["openid", *(scope for scope in scopes if scope != "openid")])


def discovery_problem(metadata: dict, oidc: OidcSettings) -> str | None:
    """Say what makes a discovery document unusable, or None: it must name our issuer, exactly, and the endpoints."""
    if metadata.get("issuer") != oidc.issuer:
        return f"the discovery document names the issuer {metadata.get('issuer')!r}, not {oidc.issuer!r}"
    missing = [name for name in NEEDED_ENDPOINTS if not metadata.get(name)]
    return f"the discovery document has no {', '.join(missing)}" if missing else None


def init_app(app: Flask, oidc: OidcSettings) -> None:
    """Register the provider as Authlib's client, when one is configured."""
    if not oidc.enabled:
        return
    client_kwargs = {"scope": scope_text(oidc.scopes), "code_challenge_method": "S256",
                     "default_timeout": oidc.timeout,
                     "token_endpoint_auth_method": "client_secret_basic" if oidc.client_secret else "none"}
    app.extensions[CLIENT] = OAuth(app).register(
        CLIENT_NAME, client_id=oidc.client_id, client_secret=oidc.client_secret or None,
        server_metadata_url=discovery_url(oidc.issuer), client_kwargs=client_kwargs)
