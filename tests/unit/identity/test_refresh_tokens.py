"""A refresh token is sealed for the store and opens under the same admin secret key alone."""

from __future__ import annotations

from ollama_proxy.identity.refresh_tokens import seal, unseal

KEY = "k" * 40
TOKEN = "eyJhbGciOi.refresh-token-of-the-provider.sig"


def test_a_sealed_token_opens_under_its_key_and_shows_nothing_of_itself():
    sealed = seal(KEY, TOKEN)
    assert unseal(KEY, sealed) == TOKEN
    assert TOKEN not in sealed and "refresh" not in sealed
    assert seal(KEY, TOKEN) != sealed  # a fresh nonce each time


def test_another_key_or_a_damaged_token_opens_nothing():
    sealed = seal(KEY, TOKEN)
    assert unseal("j" * 40, sealed) is None
    assert unseal(KEY, sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")) is None
    assert unseal(KEY, "not a sealed token") is None
