"""Membership re-checked at the provider: node-oidc-provider, the real proxy (two workers), a short recheck.

Each person signs in in a real browser and makes a key on My keys. The provider's administrator
then takes one out of the group and disables another: within the bound their keys are refused and
their sessions lose the role, while a member still in the group keeps both, past the recheck and
past ``membership_max_age`` too, because the workers keep confirming her with the refresh token.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.actors import TESTER
from tests.e2e.admin_page import admin_config
from tests.e2e.command import cli
from tests.e2e.oidc_provider import CLIENT_SECRET, OidcProvider
from tests.e2e.server import ProxyServer, free_port, wait_for
from tests.e2e.test_oidc import OIDC_SETTINGS, sign_in, text

RECHECK = 2  # admin.oidc.recheck: seconds a role or a membership goes unchecked
MAX_AGE = 6  # admin.oidc.membership_max_age: a key lapses this long after its owner's last confirmation
KEY_CACHE_SECONDS = 1
BOUND = 60  # seconds to wait for what must happen within a few rechecks: generous, for a busy machine


@pytest.fixture(scope="module")
def site(fake_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("oidc-recheck")
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}/admin/login/oidc/callback", workdir / "provider.log").start()
    oidc = {**OIDC_SETTINGS, "issuer": provider.issuer, "recheck": RECHECK, "membership_max_age": MAX_AGE,
            "scopes": ["openid", "profile", "email", "groups", "offline_access"]}
    config = admin_config(fake_server.url, workdir, oidc=oidc)
    config["auth"]["key_cache_seconds"] = KEY_CACHE_SECONDS
    proxy = ProxyServer(config, workdir / "proxy", workers=2, bind=f"127.0.0.1:{port}",
                        env={"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": CLIENT_SECRET}).start()
    store = proxy.open_store()
    store.create_team("research", models=["llama3*"], by=TESTER)
    for login in ("kim", "lou", "mia"):
        provider.put_in_groups(login, "team:research")
    yield proxy, store, provider
    store.close()
    proxy.stop()
    provider.stop()


def make_key(page, proxy: ProxyServer, name: str) -> str:
    """Make a key on My keys; return its secret."""
    page.goto(proxy.url + "/admin/my-keys")
    page.fill("#new-my-key input[name=name]", name)
    page.click("#new-my-key button[type=submit]")
    page.wait_for_url(proxy.url + f"/admin/my-keys/{name}/created")
    return page.locator("#secret").inner_text()


def chat(proxy: ProxyServer, secret: str) -> requests.Response:
    return requests.post(proxy.url + "/api/chat", headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                         json={"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "hi"}]})


def refused(proxy: ProxyServer, secret: str, reason: str) -> bool:
    answer = chat(proxy, secret)
    return answer.status_code == 401 and reason in answer.json()["error"]


def test_a_member_taken_out_of_the_group_or_disabled_loses_keys_and_session_and_one_still_in_keeps_both(
        browser, site):
    proxy, store, provider = site
    pages = {login: sign_in(browser, proxy, login) for login in ("kim", "lou", "mia")}
    secrets = {login: make_key(page, proxy, f"{login}-laptop") for login, page in pages.items()}
    assert {login: chat(proxy, secret).status_code for login, secret in secrets.items()} == {
        "kim": 200, "lou": 200, "mia": 200}
    signed_in_at = store.get_member("mia").confirmed_at

    provider.put_in_groups("kim", "staff")  # taken out of every group the proxy knows
    provider.disable("lou")
    assert wait_for(lambda: refused(proxy, secrets["kim"], "no longer vouches for its owner"), timeout=BOUND)
    assert wait_for(lambda: refused(proxy, secrets["lou"], "invalid_grant"), timeout=BOUND)
    for login in ("kim", "lou"):
        answer = pages[login].goto(proxy.url + "/admin/my-keys")
        assert answer.status == 403, login
        assert "The identity provider no longer gives you a role or a team here" in text(pages[login])
        assert "/admin/login" in pages[login].goto(proxy.url + "/admin/my-keys").url  # the session is gone
    lost = [(e.action, e.target) for e in store.audit_trail() if e.action == "member.lost"]
    assert sorted(lost) == [("member.lost", "kim"), ("member.lost", "lou")]

    time.sleep(MAX_AGE + RECHECK)  # past the bound since mia signed in: only re-checks keep her key working
    assert chat(proxy, secrets["mia"]).status_code == 200
    assert store.get_member("mia").confirmed_at > signed_in_at
    page = pages["mia"]
    assert page.goto(proxy.url + "/admin/my-keys").status == 200
    assert "mia (member, team research)" in page.locator("header.bar").inner_text()
    row = page.locator('tr[data-key="mia-laptop"]').inner_text()
    assert "active" in row and "lapsed" not in row
    assert page.script_errors == []


def test_the_keys_page_and_the_command_show_a_lapsed_key_as_such(browser, site):
    proxy, store, provider = site
    provider.put_in_groups("ned", "team:research")
    page = sign_in(browser, proxy, "ned")
    secret = make_key(page, proxy, "ned-laptop")
    assert chat(proxy, secret).status_code == 200
    provider.put_in_groups("ned", "team:ops")  # moved to another team: his research key lapses
    assert wait_for(lambda: refused(proxy, secret, "its owner is in team 'ops', not in team 'research'"),
                    timeout=BOUND)
    listing = cli(proxy, "keys", "list")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^ned-laptop .* ned \(lapsed\)$", listing.stdout, re.M), listing.stdout
    assert ("key 'ned-laptop' lapsed: at the identity provider its owner is in team 'ops', not in team 'research'"
            in listing.stdout)
