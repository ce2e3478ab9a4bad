"""The audit trail through the real server: one key's life, made with the CLI and on the admin page."""

from __future__ import annotations

import json
import re

import requests

from tests.e2e.admin_page import PASSWORD, admin_config, csrf_token
from tests.e2e.browser import screenshot
from tests.e2e.command import cli, create_key
from tests.e2e.test_admin_pages import logged_in


def _form_token(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', session.get(url, timeout=30).text).group(1)


def _sign_in(session: requests.Session, url: str, password: str) -> int:
    token = csrf_token(session, url)
    answer = session.post(url + "/admin/login", allow_redirects=False, timeout=30,
                          data={"username": "admin", "password": password, "csrf_token": token})
    return answer.status_code


def test_one_keys_life_is_in_the_trail_with_who_from_where_before_and_after(start_proxy, fake, tmp_path):
    proxy = start_proxy(admin_config(fake.url, tmp_path), workers=2)
    secret = create_key(proxy, "--name", "build-bot", "--models", "llama3*", "--rpm", "60")
    assert requests.get(proxy.url + "/api/tags", headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    browser = requests.Session()
    assert _sign_in(browser, proxy.url, "not the password") == 401
    assert _sign_in(browser, proxy.url, PASSWORD) == 302
    page = proxy.url + "/admin/keys/build-bot"
    edited = browser.post(page, allow_redirects=False, timeout=30, data={
        "csrf_token": _form_token(browser, page), "scope": "generate", "models": "llama3* qwen3:8b", "rpm": "120",
        "tpm": "", "expires": "", "chat_log": "global", "weight": "2", "klass": "batch"})
    assert edited.status_code == 302, edited.text[:300]
    assert cli(proxy, "keys", "disable", "build-bot").returncode == 0
    deleted = browser.post(page + "/delete", allow_redirects=False, timeout=30,
                           data={"csrf_token": _form_token(browser, proxy.url + "/admin/keys")})
    assert deleted.status_code == 302

    listed = cli(proxy, "audit", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    trail = json.loads(listed.stdout)
    assert [(e["action"], e["target"], e["actor_kind"]) for e in trail] == [
        ("key.create", "build-bot", "cli"),
        ("sign-in failed", "admin", "admin"),
        ("sign-in", "admin", "admin"),
        ("key.update", "build-bot", "admin"),
        ("key.update", "build-bot", "cli"),
        ("key.delete", "build-bot", "admin"),
    ]
    made, _, _, edit, disable, gone = trail
    assert made["after"]["models"] == ["llama3*"] and made["after"]["prefix"] == secret[:11]
    assert (edit["actor"], edit["origin"]) == ("admin", "127.0.0.1")
    assert edit["before"] == {"models": ["llama3*"], "rpm": 60, "weight": 1.0, "klass": "interactive"}
    assert edit["after"] == {"models": ["llama3*", "qwen3:8b"], "rpm": 120, "weight": 2.0, "klass": "batch"}
    assert (disable["before"], disable["after"]) == ({"enabled": True}, {"enabled": False})
    assert made["actor"] == disable["actor"] and made["origin"] == disable["origin"]  # the OS user, its host
    assert gone["after"] is None and gone["before"]["enabled"] is False

    shown = browser.get(proxy.url + "/admin/audit?days=1", timeout=30)
    assert shown.status_code == 200
    assert shown.text.count('data-target="build-bot"') == 4 and 'data-action="sign-in failed"' in shown.text
    for text in (listed.stdout, shown.text, cli(proxy, "audit", "--format", "csv").stdout):
        assert secret[11:] not in text


def test_the_audit_page_fits_a_1366_pixel_screen_and_its_heading_names_what_it_holds(start_proxy, fake, tmp_path,
                                                                                    browser):
    proxy = start_proxy(admin_config(fake.url, tmp_path))
    models = [f"--models=team-model-{n}:{'x' * 30}" for n in range(12)]  # a key's record: a long line of JSON
    create_key(proxy, "--name", "a-key-with-a-long-record", "--expires", "2999-01-31", *models)
    assert cli(proxy, "teams", "create", "research").returncode == 0
    page = logged_in(browser, proxy.url)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(proxy.url + "/admin/audit")
    assert page.locator("tr[data-action='key.create']").count() == 1
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    screenshot(page, "audit-1366")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"
    heading = page.locator("main p.muted").first.inner_text()
    for held in ("keys", "teams", "budgets", "aliases", "overrides", "member", "sign-in"):
        assert held in heading
    assert '"expires_at":"2999-01-31"' in page.locator("tr[data-action='key.create'] code").inner_text()
    page.context.close()
