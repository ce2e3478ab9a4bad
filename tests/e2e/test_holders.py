"""Who holds limits and budgets: a key never takes a token's name, a member's keys are capped, and a budget
dies with its holder (through the real server, two workers)."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.actors import TESTER
from tests.e2e.admin_page import PASSWORD, admin_config, csrf_token
from tests.e2e.command import cli, create_key
from tests.e2e.conftest import base_config
from tests.e2e.oidc_provider import CLIENT_SECRET, OidcProvider
from tests.e2e.server import ProxyServer, free_port, wait_for
from tests.e2e.test_oidc import OIDC_SETTINGS, sign_in, text

CAP = 3  # admin.max_keys_per_member


def _chat(proxy, secret: str) -> requests.Response:
    return requests.post(proxy.url + "/api/chat", headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                         json={"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "hi"}]})


def _budgets(proxy) -> list[dict]:
    listed = cli(proxy, "budgets", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def _held(proxy, kind: str, name: str) -> list[dict]:
    return [b for b in _budgets(proxy) if (b["holder_kind"], b["holder"]) == (kind, name)]


def test_a_key_may_not_take_a_token_of_the_files_name(start_proxy, fake, tmp_path):
    proxy = start_proxy(admin_config(fake.url, tmp_path), workers=2)
    for name in ("alice", "admin", "prometheus", "generate#0", "generate#7"):  # named, positional, metrics
        done = cli(proxy, "keys", "create", "--name", name)
        assert done.returncode == 1 and "a token of the configuration file" in done.stderr, (name, done.stderr)
    session = requests.Session()
    token = csrf_token(session, proxy.url)
    assert session.post(proxy.url + "/admin/login", allow_redirects=False, timeout=30,
                        data={"username": "admin", "password": PASSWORD, "csrf_token": token}).status_code == 302
    page = session.get(proxy.url + "/admin/keys", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = session.post(proxy.url + "/admin/keys", allow_redirects=False, timeout=30, data={
        "csrf_token": token, "name": "alice", "scope": "generate", "models": "", "rpm": "", "tpm": "",
        "expires": "", "chat_log": "global", "weight": "", "klass": "interactive", "team": ""})
    assert refused.status_code == 400 and "a token of the configuration file" in refused.text
    assert cli(proxy, "keys", "list").stdout.strip() == "no managed keys"


def test_a_re_made_key_or_team_has_no_budget_and_no_spend(start_proxy, fake):
    proxy = start_proxy(base_config(fake.url), workers=2)
    assert cli(proxy, "teams", "create", "lab").returncode == 0
    secret = create_key(proxy, "--name", "spender", "--team", "lab")
    for holder in (("--key", "spender"), ("--team", "lab")):
        assert cli(proxy, "budgets", "set", *holder, "--period", "day", "--tokens", "100000").returncode == 0
    assert _chat(proxy, secret).status_code == 200
    assert wait_for(lambda: all(b["spent"] > 0 for b in _budgets(proxy)), timeout=5)

    assert cli(proxy, "keys", "delete", "spender").returncode == 0
    assert cli(proxy, "teams", "delete", "lab").returncode == 0
    assert _budgets(proxy) == []
    assert cli(proxy, "teams", "create", "lab").returncode == 0
    create_key(proxy, "--name", "spender", "--team", "lab")
    assert _budgets(proxy) == []  # the old budgets went with their holders
    for holder in (("--key", "spender"), ("--team", "lab")):
        assert cli(proxy, "budgets", "set", *holder, "--period", "day", "--tokens", "100000").returncode == 0
    assert [b["spent"] for b in _budgets(proxy)] == [0, 0]  # and so did what they spent


@pytest.fixture
def capped_site(fake_server, tmp_path):
    """A proxy of two workers whose members may own CAP keys each, with the provider they sign in with."""
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}/admin/login/oidc/callback", tmp_path / "provider.log").start()
    config = admin_config(fake_server.url, tmp_path, oidc={"issuer": provider.issuer, **OIDC_SETTINGS},
                          max_keys_per_member=CAP)
    proxy = ProxyServer(config, tmp_path / "proxy", workers=2, bind=f"127.0.0.1:{port}",
                        env={"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": CLIENT_SECRET})
    try:
        proxy.start()
        store = proxy.open_store()
        store.create_team("research", by=TESTER)
        yield proxy, store
        store.close()
    finally:
        proxy.stop()
        provider.stop()


def test_a_member_owns_at_most_the_cap_of_keys_even_all_at_once(browser, capped_site):
    proxy, store = capped_site
    page = sign_in(browser, proxy, "mia")
    assert page.url == proxy.url + "/admin/my-keys"
    page.fill("#new-my-key input[name=name]", "alice")  # a token's of the file
    page.click("#new-my-key button[type=submit]")
    assert "'alice' is the name of a token of the configuration file" in text(page)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.content()).group(1)
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies() if c["domain"] == "127.0.0.1")

    def make(n: int) -> int:  # the form, sent at once by many tabs, to either worker
        return requests.post(proxy.url + "/admin/my-keys", headers={"Cookie": cookie}, allow_redirects=False,
                             data={"csrf_token": token, "name": f"mia-{n}"}, timeout=30).status_code

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(make, range(24)))
    assert sorted(answers) == [303] * CAP + [400] * (24 - CAP)
    assert len(store.list_keys(owner="mia")) == CAP

    page.goto(proxy.url + "/admin/my-keys")
    page.fill("#new-my-key input[name=name]", "one-more")
    page.click("#new-my-key button[type=submit]")
    assert f"at most {CAP} keys" in text(page)
    assert store.get_key("one-more") is None
    kept = store.list_keys(owner="mia")[0].name
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f'tr[data-key="{kept}"] button:has-text("Revoke")')
    page.wait_for_url(proxy.url + "/admin/my-keys")
    page.fill("#new-my-key input[name=name]", "one-more")
    page.click("#new-my-key button[type=submit]")
    page.wait_for_url(proxy.url + "/admin/my-keys/one-more/created")  # a revoked key makes room


def test_a_persons_budget_holds_every_key_they_own(start_proxy, fake):
    """A member who spent their budget with one key is refused with another they make."""
    proxy = start_proxy(base_config(fake.url), workers=2)
    store = proxy.open_store()
    try:
        store.create_team("research", by=TESTER)
        first, second = (store.create_key(name, team="research", owner="mia", by=TESTER)[1]
                         for name in ("mia-laptop", "mia-ci"))
        _, other = store.create_key("leo-laptop", team="research", owner="leo", by=TESTER)
    finally:
        store.close()
    made = cli(proxy, "budgets", "set", "--person", "mia", "--period", "day", "--tokens", "1")
    assert made.returncode == 0, made.stderr
    assert _chat(proxy, first).status_code == 200
    assert wait_for(lambda: _held(proxy, "person", "mia")[0]["spent"] > 0, timeout=5)
    for secret in (first, second):
        refused = _chat(proxy, secret)
        assert refused.status_code == 429 and refused.json()["error"].startswith(
            "person 'mia' spent its day's budget of 1 tokens"), refused.text
    assert _chat(proxy, other).status_code == 200  # another member's keys are not hers
    assert cli(proxy, "budgets", "set", "--person", "nobody", "--period", "day", "--tokens", "1").returncode == 1
