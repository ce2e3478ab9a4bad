"""Single sign-on in a real browser: node-oidc-provider, the real proxy (two workers), each role signed in.

The provider's people are in groups the proxy's ``admin.oidc`` maps to roles: ada an admin, vic a
viewer, tom a team admin of research, mia a member of research, nat in no group that counts.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from tests.actors import TESTER
from tests.e2e.admin_page import admin_config
from tests.e2e.browser import new_page, screenshot
from tests.e2e.command import cli
from tests.e2e.nginx import Nginx
from tests.e2e.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from tests.e2e.server import ProxyServer, free_port, wait_for

LABEL = "Test SSO"
KEY_CACHE_SECONDS = 1  # auth.key_cache_seconds: a revoked key is refused within this
OIDC_SETTINGS = {"client_id": CLIENT_ID, "label": LABEL, "scopes": ["openid", "profile", "email", "groups"],
                 "admin_values": ["proxy-admins"], "viewer_values": ["proxy-viewers"], "timeout": 10}
NOT_LOOPBACK = re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])")  # the provider's pages ask for web fonts


@pytest.fixture(scope="module")
def port():
    """The proxy's port: the provider must know its callback before the proxy starts."""
    return free_port()


@pytest.fixture(scope="module")
def provider(port, tmp_path_factory):
    provider = OidcProvider(f"http://127.0.0.1:{port}/admin/login/oidc/callback",
                            tmp_path_factory.mktemp("oidc-provider") / "provider.log").start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def site(fake_server, tmp_path_factory, provider, port):
    """The provider and the proxy, each knowing the other's address; two teams with a key each."""
    workdir = tmp_path_factory.mktemp("oidc")
    config = admin_config(fake_server.url, workdir, oidc={"issuer": provider.issuer, **OIDC_SETTINGS})
    config["auth"]["key_cache_seconds"] = KEY_CACHE_SECONDS
    # The client's secret comes from the environment, as a deployment gives it.
    proxy = ProxyServer(config, workdir / "proxy", workers=2, bind=f"127.0.0.1:{port}",
                        env={"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": CLIENT_SECRET}).start()
    store = proxy.open_store()
    store.create_team("research", models=["llama3*"], by=TESTER)
    store.create_team("ops", by=TESTER)
    store.create_key("research-bot", team="research", by=TESTER)
    store.create_key("ops-bot", team="ops", by=TESTER)
    yield proxy, store
    store.close()
    proxy.stop()


@pytest.fixture
def behind_nginx(fake_server, test_services, tmp_path):
    """The provider, and the proxy behind deploy/nginx.conf as the deploy runs it; the provider knows nginx only."""
    proxy_port = free_port()
    front = Nginx(proxy_port, tmp_path / "nginx")
    provider = OidcProvider(f"{front.url}/admin/login/oidc/callback", tmp_path / "provider.log").start()
    config = admin_config(fake_server.url, tmp_path, oidc={"issuer": provider.issuer, **OIDC_SETTINGS})
    proxy = ProxyServer(config, tmp_path / "proxy", workers=2, bind=f"127.0.0.1:{proxy_port}",
                        env={"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": CLIENT_SECRET,
                             "OLLAMA_PROXY_TRUSTED_PROXIES": "1"})  # as deploy/ollama-proxy.env sets it
    try:
        proxy.start()
        front.start()
        yield proxy, front
    finally:
        front.stop()
        proxy.stop()
        provider.stop()


def sign_in(browser, proxy: ProxyServer, login: str, wanted: str = "/admin", url: str = ""):
    """Open ``wanted`` (at ``url``, the proxy's own by default), press the provider's button, sign in on the
    provider's form; return the page."""
    url = url or proxy.url
    page = new_page(browser)
    page.context.route(NOT_LOOPBACK, lambda route: route.abort())
    page.goto(url + wanted)
    page.click(f"text=Sign in with {LABEL}")
    page.wait_for_url(re.compile(r"^http://localhost:\d+/interaction/"))
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password will do")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(url) + r"/admin(/.*)?$"))
    return page


def text(page) -> str:
    return re.sub(r"\s+", " ", page.locator("body").inner_text())


def trail_of(store, name: str) -> list[tuple[str, str, str]]:
    return [(entry.action, entry.target, entry.actor_kind) for entry in store.audit_trail() if entry.actor == name]


def test_an_admin_signs_in_with_the_provider_and_sees_everything(browser, site):
    proxy, store = site
    page = sign_in(browser, proxy, "ada", wanted="/admin/teams")
    assert page.url == proxy.url + "/admin/teams"
    bar = page.locator("header.bar").inner_text()
    assert "ada (admin)" in bar and "Teams" in bar and "Audit" in bar
    assert "research" in text(page) and "ops" in text(page)
    screenshot(page, "oidc-signed-in")
    page.goto(proxy.url + "/admin/audit")
    row = page.locator('#audit tr[data-action="sign-in"][data-target="ada"]').first.inner_text()
    assert "ada (oidc)" in row
    assert ("sign-in", "ada", "oidc") in trail_of(store, "ada")
    page.click("text=Log out")
    page.wait_for_url(re.compile(r".*/admin/login$"))
    assert trail_of(store, "ada")[-1] == ("sign-out", "ada", "oidc")
    assert page.script_errors == []


def test_a_viewer_reads_every_page_and_its_changes_are_refused(browser, site):
    proxy, store = site
    page = sign_in(browser, proxy, "vic")
    assert "vic (viewer)" in page.locator("header.bar").inner_text()
    for path in ("/admin/keys", "/admin/teams", "/admin/budgets", "/admin/audit", "/admin/models"):
        assert page.goto(proxy.url + path).status == 200, path
    page.goto(proxy.url + "/admin/keys")
    assert "research-bot" in text(page) and "ops-bot" in text(page)
    page.fill("#new-key input[name=name]", "viewer-key")
    with page.expect_navigation():
        page.click("#new-key button[type=submit]")
    assert "403" in page.locator("h1").inner_text()
    assert "A viewer reads the admin page but changes nothing." in text(page)
    assert store.get_key("viewer-key") is None
    assert trail_of(store, "vic") == [("sign-in", "vic", "oidc")]


def test_a_team_admin_sees_and_changes_its_teams_keys_alone(browser, site):
    proxy, store = site
    page = sign_in(browser, proxy, "tom")
    assert page.url == proxy.url + "/admin/keys"  # its home: the dashboard is every team's
    assert "tom (team admin, team research)" in page.locator("header.bar").inner_text()
    assert "research-bot" in text(page) and "ops-bot" not in text(page)
    assert page.goto(proxy.url + "/admin/keys/ops-bot").status == 403
    assert page.goto(proxy.url + "/admin/teams").status == 403
    assert page.goto(proxy.url + "/admin/usage").status == 200  # the usage page keeps to the team too
    assert "research-bot" in page.content() and "ops-bot" not in page.content()
    page.goto(proxy.url + "/admin/keys")
    token = page.locator("#new-key input[name=csrf_token]").get_attribute("value")
    refused = page.request.post(proxy.url + "/admin/keys/ops-bot/delete", form={"csrf_token": token})
    assert refused.status == 403 and store.get_key("ops-bot") is not None
    page.fill("#new-key input[name=name]", "research-ci")
    page.select_option("#new-key select[name=team]", "research")
    page.click("#new-key button[type=submit]")
    page.wait_for_url(proxy.url + "/admin/keys/research-ci/created")
    assert store.get_key("research-ci").team == "research"
    assert ("key.create", "research-ci", "oidc") in trail_of(store, "tom")


def test_a_member_makes_a_key_that_gets_no_more_than_the_team_and_revokes_it(browser, site):
    proxy, store = site
    page = sign_in(browser, proxy, "mia")
    assert page.url == proxy.url + "/admin/my-keys"
    assert "mia (member, team research)" in page.locator("header.bar").inner_text()
    assert "research-bot" not in text(page)  # the team's key is not hers
    assert page.goto(proxy.url + "/admin/keys").status == 403
    page.goto(proxy.url + "/admin/my-keys")
    page.fill("#new-my-key input[name=name]", "mia-laptop")
    page.click("#new-my-key button[type=submit]")
    page.wait_for_url(proxy.url + "/admin/my-keys/mia-laptop/created")
    secret = page.locator("#secret").inner_text()
    key = store.get_key("mia-laptop")
    assert (key.team, key.owner, key.scope) == ("research", "mia", "generate")

    def chat(model: str) -> requests.Response:
        return requests.post(proxy.url + "/api/chat", headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                             json={"model": model, "stream": False, "messages": [{"role": "user", "content": "hi"}]})

    assert chat("llama3.2").status_code == 200
    refused = chat("qwen3:8b")  # every model for the key, llama3* for its team: the team's bound holds
    assert refused.status_code == 403 and "team 'research'" in refused.json()["error"]
    page.goto(proxy.url + "/admin/my-keys")
    assert 'data-key="mia-laptop"' in page.content()
    screenshot(page, "oidc-my-keys")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click('tr[data-key="mia-laptop"] button:has-text("Revoke")')
    page.wait_for_url(proxy.url + "/admin/my-keys")
    assert "Key 'mia-laptop' revoked." in text(page)
    assert store.get_key("mia-laptop") is None
    time.sleep(KEY_CACHE_SECONDS)
    assert wait_for(lambda: chat("llama3.2").status_code == 401, timeout=5 * KEY_CACHE_SECONDS)
    assert trail_of(store, "mia") == [("sign-in", "mia", "oidc"), ("key.create", "mia-laptop", "oidc"),
                                      ("key.delete", "mia-laptop", "oidc")]


def test_a_member_rotates_a_key_of_their_own_and_it_stays_the_same_key(browser, site):
    proxy, store = site
    page = sign_in(browser, proxy, "mia")
    page.fill("#new-my-key input[name=name]", "mia-phone")
    page.click("#new-my-key button[type=submit]")
    page.wait_for_url(proxy.url + "/admin/my-keys/mia-phone/created")
    old, made = page.locator("#secret").inner_text(), store.get_key("mia-phone")

    def chat(secret: str) -> int:
        return requests.post(proxy.url + "/api/chat", headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                             json={"model": "llama3.2", "stream": False,
                                   "messages": [{"role": "user", "content": "hi"}]}).status_code

    assert chat(old) == 200
    page.goto(proxy.url + "/admin/my-keys/mia-phone/created")  # shown once: the page now says what to do instead
    gone = page.locator("#secret-gone").inner_text()
    assert "rotate the key" in gone and "create another" not in gone
    page.goto(proxy.url + "/admin/my-keys")
    row = page.locator('tr[data-key="mia-phone"]')
    row.locator("input[name=grace]").fill("1h")
    page.on("dialog", lambda dialog: dialog.accept())
    row.locator('button:has-text("Rotate")').click()
    page.wait_for_url(proxy.url + "/admin/my-keys/mia-phone/rotated")
    new = page.locator("#secret").inner_text()
    assert "Its old secret works until" in page.locator("#rotated").inner_text()
    screenshot(page, "oidc-my-key-rotated")
    key = store.get_key("mia-phone")
    assert new != old and (key.id, key.team, key.owner) == (made.id, "research", "mia") and key.prefix != made.prefix
    assert chat(new) == 200 and chat(old) == 200  # the old one through the hour given
    others = store.create_key("tom-own", team="research", owner="tom", by=TESTER)[0]
    page.goto(proxy.url + "/admin/my-keys")
    token = page.locator("#new-my-key input[name=csrf_token]").get_attribute("value")
    refused = page.request.post(proxy.url + "/admin/my-keys/tom-own/rotate", max_redirects=0,
                                form={"csrf_token": token, "grace": "0"})
    assert refused.status == 403 and store.get_key("tom-own").prefix == others.prefix  # not hers
    assert ("key.rotate", "mia-phone", "oidc") in trail_of(store, "mia")
    assert page.script_errors == []


def test_a_team_admin_sees_a_keys_chat_log_but_cannot_change_it(browser, site):
    """Whose chats are logged is the site's admins' decision: a team admin's form shows it, and its posts are
    saved without it (a new key follows chat_logs.enabled, an edited one keeps its own)."""
    proxy, store = site
    store.create_key("research-private", team="research", chat_log=False, by=TESTER)
    page = sign_in(browser, proxy, "tom", wanted="/admin/keys/research-private")
    assert page.locator("select[name=chat_log]").count() == 0
    assert page.locator("#chat-log-fixed").inner_text() == "off"
    form = {"csrf_token": page.locator("#edit-key input[name=csrf_token]").get_attribute("value"),
            "scope": "generate", "models": "", "rpm": "", "tpm": "", "expires": "", "weight": "2",
            "klass": "interactive", "team": "research", "chat_log": "on"}
    saved = page.request.post(proxy.url + "/admin/keys/research-private", form=form, max_redirects=0)
    assert saved.status == 302
    key = store.get_key("research-private")
    assert (key.chat_log, key.weight) == (False, 2.0)
    made = page.request.post(proxy.url + "/admin/keys", form={**form, "name": "research-logged"}, max_redirects=0)
    assert made.status == 303 and store.get_key("research-logged").chat_log is None
    page.goto(proxy.url + "/admin/keys")
    assert page.locator("#new-key select[name=chat_log]").count() == 0
    assert page.script_errors == []


def test_a_members_own_key_cannot_have_its_chats_logged(browser, site):
    proxy, store = site
    page = sign_in(browser, proxy, "mia")
    token = page.locator("#new-my-key input[name=csrf_token]").get_attribute("value")
    made = page.request.post(proxy.url + "/admin/my-keys", max_redirects=0,
                             form={"csrf_token": token, "name": "mia-logged", "chat_log": "on"})
    assert made.status == 303 and store.get_key("mia-logged").chat_log is None


def test_someone_with_no_role_and_no_team_gets_a_403_page_and_nothing_else(browser, site):
    proxy, store = site
    page = new_page(browser)
    page.context.route(NOT_LOOPBACK, lambda route: route.abort())
    page.goto(proxy.url + "/admin/login")
    assert page.locator("input[name=password]").is_visible()  # the password login stays beside the button
    screenshot(page, "oidc-login")
    page.click(f"text=Sign in with {LABEL}")
    page.fill("input[name=login]", "nat")
    page.fill("input[name=password]", "any password will do")
    with page.expect_response(re.compile(r".*/admin/login/oidc/callback\?.*")) as callback:
        page.click("button[type=submit]")
    assert callback.value.status == 403
    assert "You are signed in as nat at the identity provider, but it gives you no role and no team here" in text(page)
    assert "Log out" not in text(page)
    page.goto(proxy.url + "/admin")
    assert "/admin/login" in page.url
    assert trail_of(store, "nat") == [("sign-in failed", "nat", "oidc")]


def test_behind_nginx_the_provider_sends_the_browser_back_through_nginx(browser, behind_nginx):
    """nginx on a port of its own, as on a LAN box that serves something else on 80: the callback keeps it."""
    proxy, front = behind_nginx
    page = sign_in(browser, proxy, "ada", wanted="/admin/usage/report", url=front.url)
    assert page.url == front.url + "/admin/usage/report"
    assert "ada (admin)" in page.locator("header.bar").inner_text()
    csv = page.request.get(front.url + "/admin/usage/report.csv?by=key")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    callbacks = [line for line in front.access_lines() if "GET /admin/login/oidc/callback?" in line]
    assert len(callbacks) == 1 and '" 302 ' in callbacks[0], front.access_lines()
    assert page.script_errors == []


def test_a_name_the_provider_gives_prints_as_escapes_in_the_audit_trail_not_as_terminal_commands(
        browser, site, provider):
    """A provider's administrator, or a person who may name themselves there, types control characters and a
    forged row into the name: the trail the command prints shows them as escapes, one row for the one sign-in."""
    proxy, store = site
    hostile = "eve\x1b[2J\x1b[31m\n2026-11-25 09:00:00  root (cli)  key.create  admin-backdoor\u202egnp.exe"
    provider.put_in_groups("eve", "team:research")
    provider.rename("eve", hostile)
    page = sign_in(browser, proxy, "eve")
    assert "eve" in page.locator("header.bar").inner_text()
    for form in ("table", "csv"):
        printed = cli(proxy, "audit", "--format", form)
        assert printed.returncode == 0, printed.stderr
        assert "\x1b" not in printed.stdout and "\u202e" not in printed.stdout, form
        forged = [line for line in printed.stdout.splitlines() if "admin-backdoor" in line]
        assert forged and all("sign-in" in line for line in forged), (form, forged)  # no row of its own
    assert "eve\\x1b[2J\\x1b[31m\\x0a2026-11-25" in cli(proxy, "audit").stdout
    printed = cli(proxy, "audit", "--format", "json").stdout
    assert "\x1b" not in printed and "\u202e" not in printed
    assert [e["action"] for e in json.loads(printed) if e["actor"] == hostile] == ["sign-in"]  # the name, kept whole
