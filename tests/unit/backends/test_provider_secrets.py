import pytest

from ollama_proxy.backends.provider_secrets import as_written, blank, blank_bytes, secrets_of, without_userinfo
from ollama_proxy.config import ProviderSettings


def settings(base_url="https://api.example.com/v1", headers=None, **secrets):
    return ProviderSettings(name="p", base_url=base_url, preset=None, api_key=secrets.get("api_key"),
                            api_key_env=None, models=(), headers=headers or {}, model_facts={}, connect_timeout=1,
                            read_timeout=1, stream_idle_timeout=1, organization=secrets.get("organization"),
                            project=secrets.get("project"))


SECRETS = {
    "nothing configured": (settings(), ()),
    "key, organization, project, any length": (
        settings(api_key="sk-1", organization="org-abcdef", project="p1"), ("org-abcdef", "sk-1", "p1")),
    "userinfo: the password always, a short user not": (
        settings("https://bob:pa%40ss@gw.example.com/v1"),
        ("bob:pa%40ss", "bob:pa@ss", "pa%40ss", "pa@ss")),
    "a user alone, long enough to be a token": (
        settings("https://tok_0123456789@gw.example.com/v1"), ("tok_0123456789",)),
    "header values from 8 characters": (
        settings(headers={"api-key": "azure-key-0123", "X-DashScope-SSE": "enable"}), ("azure-key-0123",)),
}


@pytest.mark.parametrize("configured, secrets", SECRETS.values(), ids=SECRETS.keys())
def test_secrets_of(configured, secrets):
    assert secrets_of(configured) == secrets


@pytest.mark.parametrize("url, shown", [
    ("https://u:p@gw.example.com:8443/v1", "https://gw.example.com:8443/v1"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
])
def test_without_userinfo(url, shown):
    assert without_userinfo(url) == shown


def test_blank_replaces_the_longest_secret_first():
    secrets = ("sk-abc-long", "sk-abc")
    assert blank("key sk-abc-long or sk-abc", secrets) == "key *** or ***"
    assert blank_bytes(b'{"m":"sk-abc-long"}', tuple(s.encode() for s in secrets)) == b'{"m":"***"}'


def test_secrets_are_blanked_as_json_writes_them_too():
    written = as_written(("sk/ab\"c",))
    assert set(written) == {b'sk/ab"c', b'sk/ab\\"c', b'sk\\/ab\\"c'}
    assert blank_bytes(b'{"error": "bad key sk\\/ab\\"c"}', written) == b'{"error": "bad key ***"}'
