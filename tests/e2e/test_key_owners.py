"""Every key has a person who answers for it (issue #51, items 2 and 3): node-oidc-provider, the real proxy
(two workers), each person signed in in a real browser.

A team admin's keys made on the keys page are hers: capped at ``admin.max_keys_per_member``, and
refused once the provider drops her, while a service key she made stands on the person she named
responsible for it, and lapses with that person. A team admin closes a member's way around a key's
budget (a second key) with a person budget, for her own team's people alone.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.actors import TESTER
from tests.e2e.admin_page import admin_config
from tests.e2e.oidc_provider import CLIENT_SECRET, OidcProvider
from tests.e2e.server import ProxyServer, free_port, wait_for
from tests.e2e.test_oidc import OIDC_SETTINGS, sign_in, text
from tests.e2e.test_oidc_recheck import BOUND, KEY_CACHE_SECONDS, MAX_AGE, RECHECK, chat, make_key, refused

CAP = 10  # admin.max_keys_per_member, as the review had it
ATTEMPTS = 12  # the keys the team admin of the review made
GROUPS = {"tam": "team_admin:research", "kay": "team:research", "lea": "team_admin:research",
          "max": "team:research", "oli": "team:ops"}


@pytest.fixture(scope="module")
def site(fake_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("key-owners")
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}/admin/login/oidc/callback", workdir / "provider.log").start()
    oidc = {**OIDC_SETTINGS, "issuer": provider.issuer, "recheck": RECHECK, "membership_max_age": MAX_AGE,
            "scopes": ["openid", "profile", "email", "groups", "offline_access"]}
    config = admin_config(fake_server.url, workdir, oidc=oidc, max_keys_per_member=CAP)
    config["auth"]["key_cache_seconds"] = KEY_CACHE_SECONDS
    config["budgets"] = {"cache_seconds": 0}
    proxy = ProxyServer(config, workdir / "proxy", workers=2, bind=f"127.0.0.1:{port}",
                        env={"OLLAMA_PROXY_ADMIN_OIDC_CLIENT_SECRET": CLIENT_SECRET}).start()
    store = proxy.open_store()
    for team in ("research", "ops"):
        store.create_team(team, by=TESTER)
    for login, group in GROUPS.items():
        provider.put_in_groups(login, group)
    yield proxy, store, provider
    store.close()
    proxy.stop()
    provider.stop()


def new_key(page, proxy: ProxyServer, name: str, responsible: str | None = None) -> str:
    """Make a key on the keys page (a service key when a responsible person is named); return its secret."""
    page.goto(proxy.url + "/admin/keys")
    page.fill("#new-key input[name=name]", name)
    page.select_option("#new-key select[name=team]", "research")
    if responsible is not None:
        page.check("#new-key input[name=service]")
        page.select_option("#new-key select[name=responsible]", responsible)
    page.click("#new-key button[type=submit]")
    page.wait_for_url(proxy.url + f"/admin/keys/{name}/created")
    return page.locator("#secret").inner_text()


def flood(page, proxy: ProxyServer, names: list[str]) -> list[int]:
    """Send the keys page's form for each of ``names`` at once, as many tabs would, to either worker."""
    page.goto(proxy.url + "/admin/keys")
    token = page.locator("#new-key input[name=csrf_token]").get_attribute("value")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies() if c["domain"] == "127.0.0.1")
    fields = {"csrf_token": token, "scope": "generate", "models": "", "rpm": "", "tpm": "", "expires": "",
              "weight": "", "klass": "interactive", "team": "research", "responsible": ""}

    def make(name: str) -> int:
        return requests.post(proxy.url + "/admin/keys", headers={"Cookie": cookie}, allow_redirects=False,
                             data={**fields, "name": name}, timeout=30).status_code

    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(make, names))


def test_a_team_admins_keys_are_hers_capped_and_refused_once_the_provider_drops_her(browser, site):
    proxy, store, provider = site
    sign_in(browser, proxy, "kay")  # a person of the team, to be named responsible for a service key
    page = sign_in(browser, proxy, "tam")
    own = new_key(page, proxy, "tam-laptop")
    service = new_key(page, proxy, "research-webui", responsible="kay")
    answers = flood(page, proxy, [f"tam-{n}" for n in range(ATTEMPTS - 1)])
    assert sorted(answers) == [303] * (CAP - 1) + [400] * (ATTEMPTS - CAP)  # the service key is kay's, not hers
    assert len(store.list_keys(owner="tam")) == CAP
    assert {(k.owner, k.service) for k in store.list_keys(owner="tam")} == {("tam", False)}
    page.goto(proxy.url + "/admin/keys")
    page.fill("#new-key input[name=name]", "tam-one-more")
    page.click("#new-key button[type=submit]")
    assert f"one person may own at most {CAP} keys" in text(page)
    webui = store.get_key("research-webui")
    assert (webui.owner, webui.service) == ("kay", True)
    made = next(e for e in store.audit_trail() if e.action == "key.create" and e.target == "research-webui")
    assert (made.actor, made.after["owner"], made.after["service"]) == ("tam", "kay", True)
    assert [chat(proxy, secret).status_code for secret in (own, service)] == [200, 200]

    provider.put_in_groups("tam", "staff")  # removed from every group the proxy knows
    assert wait_for(lambda: refused(proxy, own, "no longer vouches for its owner"), timeout=BOUND)
    assert page.goto(proxy.url + "/admin/keys").status == 403
    assert chat(proxy, service).status_code == 200  # kay answers for it, and is still in the team
    provider.put_in_groups("kay", "team:ops")
    assert wait_for(lambda: refused(proxy, service, "its owner is in team 'ops', not in team 'research'"),
                    timeout=BOUND)
    assert page.script_errors == []


def _set_budget(page, proxy: ProxyServer, kind: str, holder: str):
    page.goto(proxy.url + "/admin/budgets")
    token = page.locator("#new-budget input[name=csrf_token]").get_attribute("value")
    return page.request.post(proxy.url + "/admin/budgets", max_redirects=0, form={
        "csrf_token": token, "holder_kind": kind, "holder": holder, "period": "day", "unit": "tokens",
        "amount": "1", "mode": "hard"})


def _spent_out(proxy: ProxyServer, secret: str, holder: str) -> bool:
    answer = chat(proxy, secret)
    return answer.status_code == 429 and answer.json()["error"].startswith(f"{holder} spent its day's budget")


def test_a_team_admin_closes_a_members_second_key_with_a_person_budget_of_her_team_alone(browser, site):
    proxy, store, _ = site
    sign_in(browser, proxy, "oli")  # a person of another team
    member = sign_in(browser, proxy, "max")
    first = make_key(member, proxy, "max-laptop")
    lead = sign_in(browser, proxy, "lea")
    assert _set_budget(lead, proxy, "key", "max-laptop").status == 303
    assert chat(proxy, first).status_code == 200
    assert wait_for(lambda: _spent_out(proxy, first, "key 'max-laptop'"), timeout=BOUND)
    second = make_key(member, proxy, "max-desktop")
    assert chat(proxy, second).status_code == 200  # a key's budget holds that key alone: the review's escape

    assert _set_budget(lead, proxy, "person", "max").status == 303
    assert wait_for(lambda: _spent_out(proxy, second, "person 'max'"), timeout=BOUND)
    assert _spent_out(proxy, make_key(member, proxy, "max-tablet"), "person 'max'")  # and a third key at once
    for holder in ("oli", "lea"):  # another team's person; herself, whose budget is an admin's
        answer = _set_budget(lead, proxy, "person", holder)
        assert answer.status == 403, holder
    assert [b.holder for b in store.list_budgets() if b.holder_kind == "person"] == ["max"]
    trail = [(e.action, e.target) for e in store.audit_trail() if e.actor == "lea"]
    assert trail[-2:] == [("budget.set", "key max-laptop"), ("budget.set", "person max")]
    lead.goto(proxy.url + "/admin/budgets")
    assert lead.locator('tr[data-budget="person max day tokens"]').count() == 1
    assert lead.script_errors == []
