"""A fake OpenID Connect provider for unit tests: discovery, keys and a token endpoint, over real sockets.

It has no login page: a test reads the state, nonce and PKCE challenge from the URL the proxy
sends the browser to, and comes back to the proxy's callback with a code of its own. The token
endpoint checks the client's secret, the code and the PKCE verifier (S256) as a provider does,
and answers an ID token signed with its RSA key, whose claims and key a test may script to be
wrong (another audience, issuer or nonce, expired, signed with a key it does not publish).

A code asked for with the ``offline_access`` scope brings a refresh token too. The refresh_token
grant (RFC 6749, section 6) rotates it (a used one is refused) and answers a new ID token with
the person's claims as they are then, without a nonce (OpenID Connect Core 12.2): a test changes
``people`` to move someone, deletes them to disable them, or sets ``down`` to make it fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

CLIENT_ID = "ollama-proxy"
CLIENT_SECRET = "fake-client-secret"
KEY_ID = "fake-key-1"


@dataclass
class Authorization:
    """What the proxy asked for when it sent the browser to the provider (the redirect's query)."""

    state: str
    nonce: str
    code_challenge: str
    code_challenge_method: str
    redirect_uri: str
    scope: str


@dataclass
class Issue:
    """How the next ID token is made: claims added or replaced (None removes one), and whether a foreign key
    signs it."""

    claims: dict[str, Any] = field(default_factory=dict)
    foreign_key: bool = False


class FakeIdentityProvider:
    """An OpenID provider on 127.0.0.1 that issues the ID token a test scripts."""

    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig", "alg": "RS256"})
        self.foreign = RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig", "alg": "RS256"})
        self.issuer = ""
        self.codes: dict[str, tuple[Authorization, dict, Issue]] = {}  # code -> what it was given for, and how
        self.token_requests: list[dict] = []
        self.people: dict[str, dict] = {}  # subject -> their claims now, as a refresh answers them
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> subject; each is good for one use
        self.down = False  # the token endpoint answers 503, no JSON
        self._server: BaseWSGIServer | None = None

    def start(self) -> FakeIdentityProvider:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.issuer = f"http://127.0.0.1:{self._server.port}/realms/test"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def grant(self, authorization: Authorization, claims: dict, issue: Issue | None = None) -> str:
        """Hand out a code for ``authorization`` that the token endpoint trades for an ID token with ``claims``."""
        issue = issue or Issue()
        code = f"code-{len(self.token_requests)}-{len(self.codes)}"
        self.codes[code] = (authorization, self._id_token_claims(authorization, claims, issue), issue)
        if "sub" in claims:
            self.people[claims["sub"]] = dict(claims)
        return code

    def _id_token_claims(self, authorization: Authorization, claims: dict, issue: Issue) -> dict:
        now = int(time.time())
        made = {"iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 300,
                "nonce": authorization.nonce, **claims, **issue.claims}
        return {name: value for name, value in made.items() if value is not None}

    def _wsgi(self, environ: dict, start_response) -> Any:
        request = Request(environ)
        routes = {"/realms/test/.well-known/openid-configuration": self._discovery,
                  "/realms/test/certs": self._keys, "/realms/test/token": self._token}
        route = routes.get(request.path)
        answer = route(request) if route else _json({"error": "not_found"}, 404)
        return answer(environ, start_response)

    def _discovery(self, request: Request) -> Response:
        return _json({"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/auth",
                      "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/certs",
                      "response_types_supported": ["code"], "subject_types_supported": ["public"],
                      "id_token_signing_alg_values_supported": ["RS256"],
                      "code_challenge_methods_supported": ["S256"]})

    def _keys(self, request: Request) -> Response:
        return _json({"keys": [self.key.as_dict(private=False)]})

    def _token(self, request: Request) -> Response:
        form = request.form.to_dict()
        self.token_requests.append(form)
        if self.down:
            return Response("the provider is down", status=503)
        if request.authorization is None or (request.authorization.username, request.authorization.password) != (
                self.client_id, self.client_secret):
            return _json({"error": "invalid_client"}, 401)
        if form.get("grant_type") == "refresh_token":
            return self._refresh(form)
        given = self.codes.pop(form.get("code", ""), None)
        if given is None:
            return _json({"error": "invalid_grant", "error_description": "no such code"}, 400)
        authorization, claims, issue = given
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != authorization.code_challenge or form.get("redirect_uri") != authorization.redirect_uri:
            return _json({"error": "invalid_grant", "error_description": "PKCE or redirect_uri mismatch"}, 400)
        key = self.foreign if issue.foreign_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, key)
        tokens = {"access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        if "offline_access" in authorization.scope.split():
            tokens["refresh_token"] = self._refresh_token(claims["sub"])
        return _json(tokens)

    def _refresh_token(self, subject: str) -> str:
        token = f"refresh-{len(self.token_requests)}-{len(self.refresh_tokens)}"
        self.refresh_tokens[token] = subject
        return token

    def _refresh(self, form: dict) -> Response:
        subject = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
        if subject is None or subject not in self.people:
            return _json({"error": "invalid_grant", "error_description": "no such grant, or its account is gone"},
                         400)
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 300, **self.people[subject]}
        id_token = jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, self.key)
        return _json({"access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 300,
                      "id_token": id_token, "refresh_token": self._refresh_token(subject)})


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")
