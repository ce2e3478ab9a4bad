"""The identity provider's client: the scopes it asks, where its discovery document is, and what makes one unusable."""

from __future__ import annotations

import pytest
from flask import Flask

from ollama_proxy.config import parse_settings
from ollama_proxy.identity.provider import CLIENT, discovery_problem, discovery_url, init_app, scope_text

ISSUER = "https://sso.example.com/realms/acme"
ENDPOINTS = {"authorization_endpoint": f"{ISSUER}/auth", "token_endpoint": f"{ISSUER}/token",
             "jwks_uri": f"{ISSUER}/certs"}


def oidc_settings(**oidc):
    return parse_settings({"admin": {"oidc": {"issuer": ISSUER, "client_id": "proxy", **oidc}}}, environ={}).admin.oidc


@pytest.mark.parametrize("scopes, asked", [
    ((), "openid"),
    (("profile", "email"), "openid profile email"),
    (("email", "openid", "groups"), "openid email groups"),  # openid first, once
])
def test_openid_is_always_asked_first(scopes, asked):
    assert scope_text(scopes) == asked


@pytest.mark.parametrize("issuer", [ISSUER, ISSUER + "/"])
def test_the_discovery_document_is_under_the_issuer(issuer):
    assert discovery_url(issuer) == f"{ISSUER}/.well-known/openid-configuration"


@pytest.mark.parametrize("metadata, problem", [
    ({"issuer": ISSUER, **ENDPOINTS}, None),
    ({"issuer": ISSUER + "/", **ENDPOINTS}, f"names the issuer '{ISSUER}/', not '{ISSUER}'"),
    ({**ENDPOINTS}, "names the issuer None"),
    ({"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth"}, "has no token_endpoint, jwks_uri"),
])
def test_a_discovery_document_must_name_our_issuer_exactly_and_the_endpoints(metadata, problem):
    found = discovery_problem(metadata, oidc_settings())
    assert found == problem if problem is None else problem in found


def test_a_client_is_registered_only_when_a_provider_is_configured():
    app = Flask(__name__)
    init_app(app, parse_settings({}, environ={}).admin.oidc)
    assert CLIENT not in app.extensions
    init_app(app, oidc_settings(scopes=["email"]))
    assert app.extensions[CLIENT].client_kwargs["scope"] == "openid email"
