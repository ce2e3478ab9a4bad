"""Seal the identity provider's refresh tokens for the store, and open them again: JWE, direct AES-256-GCM.

A refresh token lets whoever holds it ask the provider about a person for weeks: the store keeps
it sealed with a key drawn from the admin secret key (``admin.secret_key``, or its file), so a
copy of the database alone opens none. A new secret key leaves the kept tokens unopenable: their
owners' keys then hold until ``admin.oidc.membership_max_age`` runs out, or they sign in again.
"""

from __future__ import annotations

import hashlib
import hmac

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

HEADER = {"alg": "dir", "enc": "A256GCM"}
PURPOSE = b"ollama-proxy: refresh tokens of the identity provider"  # no other use of the secret key derives this


def _key(secret_key: str) -> OctKey:
    return OctKey.import_key(hmac.new(secret_key.encode(), PURPOSE, hashlib.sha256).digest())


def seal(secret_key: str, token: str) -> str:
    """Encrypt and authenticate ``token`` under a key drawn from ``secret_key``."""
    return jwe.encrypt_compact(HEADER, token.encode(), _key(secret_key))


def unseal(secret_key: str, sealed: str) -> str | None:
    """The token ``sealed`` holds, or None if it was sealed under another secret key or is damaged."""
    try:
        return jwe.decrypt_compact(sealed, _key(secret_key)).plaintext.decode()
    except (JoseError, ValueError):
        return None
