import pytest

from ollama_proxy.config import ConfigError, load_settings, parse_settings


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


@pytest.mark.parametrize("raw, named", [
    ({"servce": {}}, "servce: Unknown field"),
    ({"service": {"read_timeot": 5}}, "service.read_timeot: Unknown field"),
    ({"service": {"connect_timeout": "soon"}}, "service.connect_timeout: Not a valid number"),
    ({"service": {"read_timeout": 0}}, "service.read_timeout"),
    ({"service": {"base_url": "localhost:11434"}}, "service.base_url"),
    ({"limits": {"max_body_bytes": "50MB"}}, "limits.max_body_bytes"),
    ({"auth": {"generate_tokens": [""]}}, "auth.generate_tokens.0"),
    ({"auth": {"generate_tokens": [{"token": "x", "role": "y"}]}}, "auth.generate_tokens.0"),
    ({"logging": {"level": "LOUD"}}, "logging.level"),
    ({"cors": {"origins": "*"}}, "cors.origins: Not a valid list"),
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


def test_shipped_default_config_is_valid():
    settings = load_settings(environ={})
    assert settings.service.base_url == "http://localhost:11434"
