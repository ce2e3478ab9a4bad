"""The admin.oidc section: how often membership is re-checked, and how long a key stands on one confirmation."""

from __future__ import annotations

import pytest

from ollama_proxy.config import ConfigError, parse_settings

SSO = {"issuer": "https://sso.example.com/realms/acme", "client_id": "proxy"}


def oidc(**values):
    return parse_settings({"admin": {"oidc": {**SSO, **values}}}, environ={}).admin.oidc


def test_the_defaults_recheck_every_quarter_hour_and_hold_a_key_a_day_with_a_refresh_token_asked_for():
    settings = oidc()
    assert (settings.recheck, settings.membership_max_age) == (900, 86400)
    assert "offline_access" in settings.scopes


def test_a_bound_shorter_than_the_time_between_rechecks_is_refused():
    assert oidc(recheck=2, membership_max_age=2).membership_max_age == 2
    with pytest.raises(ConfigError, match="membership_max_age must be at least recheck"):
        oidc(recheck=60, membership_max_age=30)
    with pytest.raises(ConfigError, match="recheck"):
        oidc(recheck=0)
