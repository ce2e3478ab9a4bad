import pytest

from ollama_proxy.config import parse_settings
from ollama_proxy.config.environment import ENV_OVERRIDES, apply_env, blamed, env_value, overridable
from ollama_proxy.config.errors import ConfigError

# systemd units, containers and deploy/ set these names: they must not change.
KNOWN = {
    "OLLAMA_PROXY_GENERATE_TOKENS": ("auth", "generate_tokens"),
    "OLLAMA_PROXY_MANAGE_TOKENS": ("auth", "manage_tokens"),
    "OLLAMA_PROXY_BASE_URL": ("service", "base_url"),
    "OLLAMA_PROXY_CONNECT_TIMEOUT": ("service", "connect_timeout"),
    "OLLAMA_PROXY_READ_TIMEOUT": ("service", "read_timeout"),
    "OLLAMA_PROXY_STREAM_IDLE_TIMEOUT": ("service", "stream_idle_timeout"),
    "OLLAMA_PROXY_TRUSTED_PROXIES": ("service", "trusted_proxies"),
    "OLLAMA_PROXY_NUM_PARALLEL": ("service", "num_parallel"),
    "OLLAMA_PROXY_MAX_LOADED_MODELS": ("service", "max_loaded_models"),
    "OLLAMA_PROXY_MULTIUSER_CACHE": ("service", "multiuser_cache"),
    "OLLAMA_PROXY_PROMPT_CACHE_MIB": ("service", "prompt_cache_mib"),
    "OLLAMA_PROXY_SCHEDULING": ("service", "scheduling"),
    "OLLAMA_PROXY_MAX_WAIT": ("scheduling", "max_wait"),
    "OLLAMA_PROXY_CORS_ORIGINS": ("cors", "origins"),
    "OLLAMA_PROXY_LOG_DIR": ("logging", "dir"),
    "OLLAMA_PROXY_LOG_LEVEL": ("logging", "level"),
    "OLLAMA_PROXY_STORE_URL": ("store", "url"),
    "OLLAMA_PROXY_ADMIN_PASSWORD_HASH": ("admin", "password_hash"),
    "OLLAMA_PROXY_ADMIN_SECRET_KEY": ("admin", "secret_key"),
    "OLLAMA_PROXY_ADMIN_SECRET_KEY_FILE": ("admin", "secret_key_file"),
    "OLLAMA_PROXY_ADMIN_COOKIE_SECURE": ("admin", "cookie_secure"),
    "OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": ("admin", "oidc", "client_secret"),
    "OLLAMA_PROXY_RATELIMIT_STORAGE_URL": ("ratelimit", "storage_url"),
    "OLLAMA_PROXY_METRICS_TOKENS": ("metrics", "tokens"),
}


def test_the_variables_are_the_ones_deployments_set():
    assert ENV_OVERRIDES == KNOWN


@pytest.mark.parametrize("variable, text, value", [
    ("OLLAMA_PROXY_CORS_ORIGINS", "http://a.lan, http://b.lan,,", ["http://a.lan", "http://b.lan"]),
    ("OLLAMA_PROXY_METRICS_TOKENS", " p1 ", ["p1"]),
    ("OLLAMA_PROXY_TRUSTED_PROXIES", " 2 ", 2),
    ("OLLAMA_PROXY_TRUSTED_PROXIES", "-1", "-1"),  # left for the schema to refuse
    ("OLLAMA_PROXY_READ_TIMEOUT", "30", "30"),
    ("OLLAMA_PROXY_NUM_PARALLEL", "4", 4),
    ("OLLAMA_PROXY_LOG_DIR", " /var/log ", " /var/log "),
])
def test_a_variable_is_read_as_the_type_of_its_key(variable, text, value):
    _, key = overridable()[variable]
    assert env_value(key, text) == value


@pytest.mark.parametrize("text, value", [("false", False), ("0", False), ("true", True)])
def test_the_admin_cookie_may_be_let_over_plain_http_from_the_environment(text, value):
    # The VM's /etc/ollama-proxy/env says it, for a LAN without TLS.
    settings = parse_settings({"admin": {"cookie_secure": True}}, environ={"OLLAMA_PROXY_ADMIN_COOKIE_SECURE": text})
    assert settings.admin.cookie_secure is value


def test_apply_env_overrides_without_changing_the_file():
    raw = {"service": {"read_timeout": 5, "pool_size": 3}}
    merged = apply_env(raw, {"OLLAMA_PROXY_READ_TIMEOUT": "30", "OLLAMA_PROXY_LOG_LEVEL": "DEBUG", "OTHER": "x"})
    assert merged == {"service": {"read_timeout": "30", "pool_size": 3}, "logging": {"level": "DEBUG"}}
    assert raw == {"service": {"read_timeout": 5, "pool_size": 3}}


def test_apply_env_reaches_into_a_section_within_a_section():
    raw = {"admin": {"username": "root", "oidc": {"issuer": "https://sso.lan", "client_id": "proxy"}}}
    merged = apply_env(raw, {"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": "s3cret"})
    assert merged["admin"] == {"username": "root",
                               "oidc": {"issuer": "https://sso.lan", "client_id": "proxy", "client_secret": "s3cret"}}
    assert "client_secret" not in raw["admin"]["oidc"]
    assert apply_env({}, {"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": "s"}) == {"admin": {"oidc": {"client_secret": "s"}}}


def test_apply_env_refuses_an_inner_section_that_is_no_mapping():
    with pytest.raises(ConfigError, match="^admin.oidc: must be a mapping$"):
        apply_env({"admin": {"oidc": "on"}}, {"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": "s"})


def test_apply_env_refuses_a_section_that_is_no_mapping():
    with pytest.raises(ConfigError, match="^service: must be a mapping$"):
        apply_env({"service": "x"}, {"OLLAMA_PROXY_READ_TIMEOUT": "30"})


@pytest.mark.parametrize("problem, environ, said", [
    ("service.read_timeout: Not a valid number.", {"OLLAMA_PROXY_READ_TIMEOUT": "x"},
     "$OLLAMA_PROXY_READ_TIMEOUT (service.read_timeout: Not a valid number.)"),
    ("auth.generate_tokens.0: bad", {"OLLAMA_PROXY_GENERATE_TOKENS": ","},
     "$OLLAMA_PROXY_GENERATE_TOKENS (auth.generate_tokens.0: bad)"),
    ("service.read_timeout: Not a valid number.", {}, "c.yaml: service.read_timeout: Not a valid number."),
    ("admin.oidc.client_secret: bad", {"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": "x"},
     "$OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET (admin.oidc.client_secret: bad)"),
    ("service.read_timeout_x: Unknown field.", {"OLLAMA_PROXY_READ_TIMEOUT": "1"},
     "c.yaml: service.read_timeout_x: Unknown field."),
])
def test_a_problem_is_blamed_on_its_variable_or_the_file(problem, environ, said):
    assert blamed(problem, "c.yaml", environ) == said
