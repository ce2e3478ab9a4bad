import os
import pwd
import re
from pathlib import Path

import pytest

from ollama_proxy.config import (
    PROJECT_ROOT,
    ConfigError,
    ModelFacts,
    OllamaServerSettings,
    RetrySettings,
    RoutingSettings,
    load_settings,
    parse_settings,
)


def test_defaults_when_empty():
    settings = parse_settings(None, environ={})
    assert settings.service.base_url == "http://localhost:11434"
    assert settings.service.read_timeout == 600.0
    assert settings.limits.max_body_bytes == 50 * 1024 * 1024
    assert settings.cors.origins == ()
    assert settings.auth.generate_tokens == () and settings.auth.manage_tokens == ()
    assert settings.logging.dir.endswith("/logs")


def test_original_proxy_file_is_accepted():
    raw = {"auth": {"generate_tokens": ["a", "b"], "manage_tokens": ["m"]},
           "service": {"base_url": "http://gpu1:11434/"}}
    settings = parse_settings(raw, environ={})
    assert [t.name for t in settings.auth.generate_tokens] == ["generate#0", "generate#1"]
    assert [t.secret for t in settings.auth.manage_tokens] == ["m"]
    assert settings.service.base_url == "http://gpu1:11434"


def test_named_tokens_and_secret_not_in_repr():
    settings = parse_settings({"auth": {"generate_tokens": [{"name": "alice", "token": "s3cret"}]}}, environ={})
    token = settings.auth.generate_tokens[0]
    assert (token.name, token.secret) == ("alice", "s3cret")
    assert "s3cret" not in repr(settings)


def test_tokens_may_carry_rate_limits():
    raw = {"auth": {"generate_tokens": [{"name": "alice", "token": "a", "rpm": 60, "tpm": 10000}, "b"]}}
    alice, plain = parse_settings(raw, environ={}).auth.generate_tokens
    assert (alice.name, alice.rpm, alice.tpm) == ("alice", 60, 10000)
    assert (plain.name, plain.rpm, plain.tpm) == ("generate#1", None, None)


@pytest.mark.parametrize("url, expected", [
    ("sqlite:///data/ratelimit.db", f"sqlite:///{PROJECT_ROOT}/data/ratelimit.db"),
    ("sqlite:////var/lib/op/rl.db", "sqlite:////var/lib/op/rl.db"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("memory://", "memory://"),
])
def test_ratelimit_storage_url(url, expected):
    settings = parse_settings({"ratelimit": {"storage_url": url}}, environ={})
    assert settings.ratelimit.storage_url == expected
    environ = {"OLLAMA_PROXY_RATELIMIT_STORAGE_URL": "redis://:pw@cache:6379/1"}
    assert parse_settings({}, environ=environ).ratelimit.storage_url == "redis://:pw@cache:6379/1"


@pytest.mark.parametrize("key", ["store.url", "ratelimit.storage_url"])
@pytest.mark.parametrize("url", ["sqlite://data/op.db", "sqlite://", "SQLite+pysqlite://op.db"])
def test_a_sqlite_url_naming_no_file_is_refused(key, url):
    """Two slashes name a host: SQLAlchemy would keep the store in each worker's memory, the limiter read ``.db``."""
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=f"{key}.*three slashes"):
        parse_settings({section: {name: url}}, environ={})


@pytest.mark.parametrize("raw, named", [
    ({"servce": {}}, "servce: Unknown field"),
    ({"service": {"read_timeot": 5}}, "service.read_timeot: Unknown field"),
    ({"service": {"connect_timeout": "soon"}}, "service.connect_timeout: Not a valid number"),
    ({"service": {"read_timeout": 0}}, "service.read_timeout"),
    ({"service": {"base_url": "localhost:11434"}}, "service.base_url"),
    ({"limits": {"max_body_bytes": "50MB"}}, "limits.max_body_bytes"),
    ({"auth": {"generate_tokens": [""]}}, "auth.generate_tokens.0"),
    ({"auth": {"generate_tokens": [{"token": "x", "role": "y"}]}}, "auth.generate_tokens.0"),
    ({"auth": {"generate_tokens": [{"token": "x", "rpm": 0}]}}, "auth.generate_tokens.0.rpm"),
    ({"auth": {"generate_tokens": [{"token": "x", "tpm": "lots"}]}}, "auth.generate_tokens.0.tpm"),
    ({"auth": {"generate_tokens": [{"name": "n", "rpm": 5}]}}, "auth.generate_tokens.0.token"),
    ({"ratelimit": {"storage_timeout": 0}}, "ratelimit.storage_timeout"),
    ({"logging": {"level": "LOUD"}}, "logging.level"),
    ({"cors": {"origins": "*"}}, "cors.origins: Not a valid list"),
    ({"budgets": {"timezone": "Mars/Olympus_Mons"}}, "budgets.timezone: not a time zone the system knows"),
    (["not", "a", "mapping"], "must be a mapping"),
])
def test_bad_configuration_names_the_key(raw, named):
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, environ={})
    assert named in str(caught.value)


def test_environment_overrides_yaml():
    environ = {"OLLAMA_PROXY_BASE_URL": "http://gpu2:11434", "OLLAMA_PROXY_READ_TIMEOUT": "30",
               "OLLAMA_PROXY_CORS_ORIGINS": "http://a.lan, http://b.lan", "OLLAMA_PROXY_LOG_DIR": "/var/log/op",
               "OLLAMA_PROXY_GENERATE_TOKENS": "t1,t2"}
    settings = parse_settings({"service": {"base_url": "http://gpu1:11434", "read_timeout": 5}}, environ=environ)
    assert settings.service.base_url == "http://gpu2:11434"
    assert settings.service.read_timeout == 30.0
    assert settings.cors.origins == ("http://a.lan", "http://b.lan")
    assert settings.logging.dir == "/var/log/op"
    assert [t.secret for t in settings.auth.generate_tokens] == ["t1", "t2"]


def test_bad_environment_value_is_reported():
    with pytest.raises(ConfigError, match="service.connect_timeout"):
        parse_settings({}, environ={"OLLAMA_PROXY_CONNECT_TIMEOUT": "fast"})


def test_a_bad_environment_value_is_blamed_on_its_variable_not_the_file():
    with pytest.raises(ConfigError) as caught:
        parse_settings({"service": {"connect_timeout": 2}}, "config.yaml", {"OLLAMA_PROXY_READ_TIMEOUT": "abc"})
    assert str(caught.value) == "$OLLAMA_PROXY_READ_TIMEOUT (service.read_timeout: Not a valid number.)"
    with pytest.raises(ConfigError) as caught:
        parse_settings({"service": {"read_timeout": "abc"}}, "config.yaml", {})
    assert str(caught.value) == "config.yaml: service.read_timeout: Not a valid number."


@pytest.mark.parametrize("raw, message", [
    ({"servce": {}}, "servce: Unknown field; did you mean 'service'?"),
    ({"service": {"read_timeot": 5}}, "service.read_timeot: Unknown field; did you mean 'read_timeout'?"),
    ({"service": {"zzz": 5}}, "service.zzz: Unknown field."),
])
def test_a_misspelt_key_is_refused_with_the_nearest_known_one(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, "config.yaml", {})
    assert str(caught.value) == f"config.yaml: {message}"


def test_load_settings_reads_file_and_env_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("service:\n  base_url: http://box:1\n")
    assert load_settings(environ={"OLLAMA_PROXY_CONFIG": str(path)}).service.base_url == "http://box:1"
    assert load_settings(path, environ={}).source == str(path)


def test_load_settings_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings(tmp_path / "none.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("service: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('service:\n  base_url: "http://x\n  read_timeout: 5\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(bad, environ={})
    message = str(caught.value)
    assert message.startswith(f"{bad}: not valid YAML: while scanning a quoted scalar started at line 2: ")
    assert "unicode string" not in message


def test_shipped_default_config_is_valid():
    settings = load_settings(environ={})
    assert settings.service.base_url == "http://localhost:11434"


BACKENDS_YAML = """
backends:
  - {name: gpu2, type: ollama, base_url: "http://10.0.0.12:11434"}
  - {name: deepseek, type: openai, preset: deepseek, api_key_env: DEEPSEEK_API_KEY}
  - {name: lab, type: openai, base_url: "http://127.0.0.1:8000/v1", api_key_env: LAB_KEY, models: [smollm2]}
"""
KEYS = {"DEEPSEEK_API_KEY": "sk-deep", "LAB_KEY": "lab-key"}


def _backends_file(tmp_path, text=BACKENDS_YAML):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_backends_section_loads(tmp_path):
    gpu2, deepseek, lab = load_settings(_backends_file(tmp_path), environ=KEYS).backends
    assert gpu2 == OllamaServerSettings("gpu2", "http://10.0.0.12:11434", None, ())
    assert (deepseek.name, deepseek.base_url, deepseek.preset, deepseek.api_key) == \
        ("deepseek", "https://api.deepseek.com/v1", "deepseek", "sk-deep")
    assert (lab.base_url, lab.preset, lab.api_key, lab.api_key_env, lab.models) == \
        ("http://127.0.0.1:8000/v1", None, "lab-key", "LAB_KEY", ("smollm2",))
    assert (lab.connect_timeout, lab.read_timeout, lab.stream_idle_timeout) == (5.0, 600.0, 300.0)
    assert (lab.pool_size, lab.models_cache_seconds) == (100, 300.0)
    assert "sk-deep" not in repr(deepseek) and "lab-key" not in repr(lab)


@pytest.mark.parametrize("environ, named", [
    ({"LAB_KEY": "lab-key"}, "$DEEPSEEK_API_KEY"),
    ({"DEEPSEEK_API_KEY": "sk", "LAB_KEY": "  "}, "$LAB_KEY"),
])
def test_unset_or_empty_api_key_variable_stops_the_start(tmp_path, environ, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_settings(_backends_file(tmp_path), environ=environ)


def test_full_backend_entries():
    raw = {"service": {"read_timeout": 42},
           "backends": [
               {"name": "gpu3", "type": "ollama", "base_url": "http://gpu3:11434/", "max_concurrent": 2,
                "models": ["llama3*", "qwen*"]},
               {"name": "or", "type": "openai", "preset": "openrouter", "base_url": "https://eu.example/v1/",
                "headers": {"HTTP-Referer": "https://lan"}, "read_timeout": 9, "pool_size": 20,
                "models_cache_seconds": 0,
                "model_facts": {"m1": {"context_length": 8192, "capabilities": ["completion", "tools"]}}}],
           "retry": {"attempts": 5}, "routing": {"cooldown": 2}}
    settings = parse_settings(raw, environ={})
    gpu3, provider = settings.backends
    assert gpu3 == OllamaServerSettings("gpu3", "http://gpu3:11434", 2, ("llama3*", "qwen*"))
    assert (provider.base_url, provider.preset, provider.api_key) == ("https://eu.example/v1", "openrouter", None)
    assert provider.headers == {"HTTP-Referer": "https://lan"}
    assert provider.model_facts == {"m1": ModelFacts(8192, ("completion", "tools"))}
    assert (provider.read_timeout, provider.connect_timeout) == (9.0, 5.0)
    assert (provider.pool_size, provider.models_cache_seconds) == (20, 0.0)
    assert settings.retry == RetrySettings(attempts=5)
    assert settings.routing.cooldown == 2.0


def test_a_providers_organization_and_project_load_unset_by_default_and_stay_out_of_its_repr():
    entry = {"name": "oa", "type": "openai", "preset": "openai"}
    provider, plain = parse_settings({"backends": [{**entry, "organization": "org-123", "project": "proj_9"},
                                                   {**entry, "name": "oa2"}]}, environ={}).backends
    assert (provider.organization, provider.project, plain.organization, plain.project) == (
        "org-123", "proj_9", None, None)
    assert "org-123" not in repr(provider) and "proj_9" not in repr(provider)
    with pytest.raises(ConfigError, match="backends.0.project"):
        parse_settings(_one(name="a", type="openai", preset="openai", project=""), environ={})


def test_backend_sections_default():
    settings = parse_settings({}, environ={})
    assert settings.backends == ()
    assert settings.retry == RetrySettings(3, 30.0, 0.5, 8.0)
    assert settings.routing == RoutingSettings()


def _one(**entry):
    return {"backends": [entry]}


@pytest.mark.parametrize("raw, named", [
    (_one(name="default", type="ollama", base_url="http://a:1"), "backends.0.name"),
    (_one(name="a b", type="ollama", base_url="http://a:1"), "backends.0.name"),
    (_one(name="a", type="vllm", base_url="http://a:1"), "backends.0.type: must be one of: ollama, openai"),
    (_one(name="a", type=["ollama"], base_url="http://a:1"), "backends.0.type: must be one of: ollama, openai"),
    (_one(name="a", type={"x": 1}, base_url="http://a:1"), "backends.0.type: must be one of: ollama, openai"),
    (_one(name="a", type="ollama"), "backends.0.base_url: Missing data"),
    (_one(name="a", type="ollama", base_url="http://a:1", preset="deepseek"), "backends.0.preset: Unknown field"),
    (_one(name="a", type="ollama", base_url="http://a:1", max_concurrent=0), "backends.0.max_concurrent"),
    (_one(name="a", type="openai"), "backends.0.base_url: name a preset or a base_url"),
    (_one(name="a", type="openai", preset="nope"), "backends.0.preset"),
    (_one(name="a", type="openai", preset="deepseek", model_facts={"m": {"capabilities": ["fly"]}}),
     "backends.0.model_facts"),
    ({"backends": [{"name": "a", "type": "ollama", "base_url": "http://a:1"},
                   {"name": "a", "type": "openai", "preset": "deepseek"}]},
     "backends: backend names must be unique: a"),
    ({"backends": ["gpu2"]}, "backends.0: a backend is a mapping"),
    (_one(name="a", type="openai", preset="deepseek", pool_size=0), "backends.0.pool_size"),
    (_one(name="a", type="openai", preset="deepseek", pool_size=2.5), "backends.0.pool_size: Not a valid integer"),
    (_one(name="a", type="openai", preset="deepseek", models_cache_seconds=-1), "backends.0.models_cache_seconds"),
    (_one(name="a", type="openai", preset="deepseek", models_cache_seconds="long"),
     "backends.0.models_cache_seconds: Not a valid number"),
    (_one(name="a", type="ollama", base_url="http://a:1", pool_size=4), "backends.0.pool_size: Unknown field"),
    ({"retry": {"attempts": 0}}, "retry.attempts"),
    ({"routing": {"refresh_interval": 0}}, "routing.refresh_interval"),
    ({"routing": {"cooldwn": 1}}, "routing.cooldwn: Unknown field"),
])
def test_bad_backend_configuration_names_the_key(raw, named):
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, environ={})
    assert named in str(caught.value)

def test_admin_is_off_without_a_password_hash():
    admin = parse_settings(None, environ={}).admin
    assert (admin.enabled, admin.username, admin.login_attempts, admin.login_window) == (False, "admin", 5, 300)
    assert admin.secret_key_file.endswith("/data/admin-secret-key")


def test_the_front_door_defaults_trust_no_proxy_and_send_the_cookie_over_https_only():
    settings = parse_settings(None, environ={})
    assert (settings.service.trusted_proxies, settings.service.health_cache_seconds) == (0, 2.0)
    assert (settings.admin.cookie_secure, settings.admin.login_address_attempts) == (True, 20)


@pytest.mark.parametrize("environ, trusted", [
    ({}, 0),
    ({"OLLAMA_PROXY_TRUSTED_PROXIES": "1"}, 1),
    ({"OLLAMA_PROXY_TRUSTED_PROXIES": " 2 "}, 2),
])
def test_trusted_proxies_come_from_the_environment(environ, trusted):
    assert parse_settings({"service": {"trusted_proxies": 0}}, environ=environ).service.trusted_proxies == trusted


@pytest.mark.parametrize("raw, environ, named", [
    ({}, {"OLLAMA_PROXY_TRUSTED_PROXIES": "one"}, "service.trusted_proxies: Not a valid integer"),
    ({}, {"OLLAMA_PROXY_TRUSTED_PROXIES": "-1"}, "service.trusted_proxies"),
    ({"service": {"trusted_proxies": 1.5}}, {}, "service.trusted_proxies"),
    ({"service": {"health_cache_seconds": -1}}, {}, "service.health_cache_seconds"),
    ({"admin": {"login_address_attempts": 0}}, {}, "admin.login_address_attempts"),
])
def test_bad_front_door_settings_name_the_key(raw, environ, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        parse_settings(raw, environ=environ)


@pytest.mark.parametrize("password_hash, accepted", [
    ("scrypt:32768:8:1$RA59SMrngCADVhoP$a4387643b97200d4", True),
    ("pbkdf2:sha256:600000$abc$0123abcd", True),
    ("", True),
    ("admin", False),  # a password pasted where its hash belongs
    ("md5$x$y", False),
])
def test_admin_password_hash_must_be_a_hash(password_hash, accepted):
    raw = {"admin": {"password_hash": password_hash}}
    if accepted:
        assert parse_settings(raw, environ={}).admin.password_hash == password_hash
    else:
        with pytest.raises(ConfigError, match="admin.password_hash: not a password hash"):
            parse_settings(raw, environ={})


def test_admin_secrets_come_from_the_environment_and_stay_out_of_repr():
    environ = {"OLLAMA_PROXY_ADMIN_PASSWORD_HASH": "pbkdf2:sha256:1$salt$00ff",
               "OLLAMA_PROXY_ADMIN_SECRET_KEY": "k" * 40}
    settings = parse_settings(None, environ=environ)
    assert (settings.admin.password_hash, settings.admin.secret_key) == ("pbkdf2:sha256:1$salt$00ff", "k" * 40)
    assert "k" * 40 not in repr(settings) and "00ff" not in repr(settings)


def test_metrics_defaults_show_no_key_names_and_serve_from_one_process():
    metrics = parse_settings(None, environ={}).metrics
    assert (metrics.enabled, metrics.tokens, metrics.key_names, metrics.multiproc_dir) == (True, (), False, "")


def test_metrics_tokens_and_directory_from_the_environment():
    environ = {"OLLAMA_PROXY_METRICS_TOKENS": "p1, p2", "PROMETHEUS_MULTIPROC_DIR": "/run/ollama-proxy/metrics"}
    metrics = parse_settings({"metrics": {"key_names": True}}, environ=environ).metrics
    assert [(t.name, t.secret) for t in metrics.tokens] == [("metrics#0", "p1"), ("metrics#1", "p2")]
    assert metrics.multiproc_dir == "/run/ollama-proxy/metrics" and metrics.key_names


def test_the_metrics_directory_is_not_a_file_setting():
    with pytest.raises(ConfigError, match="metrics.multiproc_dir: Unknown field"):
        parse_settings({"metrics": {"multiproc_dir": "/tmp/x"}}, environ={})


def test_scheduling_keys_keep_ollamas_defaults_and_can_be_turned_off_per_server():
    import yaml
    raw = yaml.safe_load("""
service: {base_url: "http://gpu1:11434", num_parallel: 2, max_loaded_models: 1, max_concurrent: 4}
backends:
  - {name: gpu2, type: ollama, base_url: "http://gpu2:11434", num_parallel: 2, max_loaded_models: 1}
  - {name: old, type: ollama, base_url: "http://old:11434", scheduling: off}
""")
    settings = parse_settings(raw)
    service, (gpu2, old) = settings.service, settings.ollama_servers
    assert (service.num_parallel, service.max_loaded_models, service.max_concurrent) == (2, 1, 4)
    assert service.scheduling is True
    assert (gpu2.num_parallel, gpu2.max_loaded_models, gpu2.scheduling) == (2, 1, True)
    assert (old.num_parallel, old.max_loaded_models, old.scheduling) == (1, 3, False)  # Ollama's own defaults
    assert parse_settings({}, environ={"OLLAMA_PROXY_SCHEDULING": "off"}).service.scheduling is False


def test_an_unset_api_key_says_where_the_service_reads_it_and_that_it_needs_a_restart(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(_backends_file(tmp_path), environ={"LAB_KEY": "lab-key"})
    assert "a line DEEPSEEK_API_KEY=... to /etc/ollama-proxy/env, then systemctl restart ollama-proxy" in str(
        caught.value)


def test_a_file_the_reader_may_not_read_names_the_reader_and_what_to_do(tmp_path, monkeypatch):
    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", refused)
    user = pwd.getpwuid(os.geteuid()).pw_name
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "candidate.yaml", environ={})
    said = str(caught.value)
    assert said.startswith(f"cannot read configuration {tmp_path / 'candidate.yaml'}: Permission denied (read as "
                           f"user {user}, which may not read it: make it readable to {user}")
    assert "install -m 0640 -g " in said
