"""The admin login over plain HTTP on a LAN, where the browser is in no secure context and keeps no Secure cookie."""

from __future__ import annotations

import re

import pytest
import requests

from tests.e2e.admin_page import PASSWORD, admin_config
from tests.e2e.browser import launch, new_page, screenshot

LAN_HOST = "admin.lan"
HTTPS_ONLY = "The session cookie is sent over HTTPS only, so signing in cannot work over {url}."
NO_COOKIE = "The browser sent this form without its session cookie"
BARE_CSRF = "The CSRF session token is missing"
WARNING = re.compile(r'<p class="flash warn"[^>]*>(.*?)</p>', re.S)


@pytest.fixture(scope="module")
def lan_browser():
    """Chromium resolving admin.lan to this machine: http://admin.lan:PORT is then a LAN page, no secure context."""
    playwright, chromium = launch(f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1")
    yield chromium
    chromium.close()
    playwright.stop()


def lan_url(server) -> str:
    return f"http://{LAN_HOST}:{server.port}"


def submit_login(page, url: str):
    """Fill the login form at ``url`` with the right password, send it, and return the answer to the POST."""
    page.goto(url + "/admin")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.click("button[type=submit]")
    return posted.value


def test_with_the_https_only_cookie_the_lan_login_says_why_it_cannot_work(lan_browser, fake, start_proxy, tmp_path):
    server = start_proxy(admin_config(fake.url, tmp_path, cookie_secure=True), workers=1)
    page = new_page(lan_browser)
    page.goto(lan_url(server) + "/admin")
    assert page.url == lan_url(server) + "/admin/login?next=/admin"
    [warning] = page.locator(".flash.warn").all_inner_texts()  # before anything is typed
    assert warning.startswith(HTTPS_ONLY.format(url=lan_url(server)))
    assert "admin.cookie_secure: false (OLLAMA_PROXY_ADMIN_COOKIE_SECURE=false)" in warning
    screenshot(page, "login-over-http")

    answer = submit_login(page, lan_url(server))
    assert answer.status == 400
    said = page.locator("main").inner_text()
    assert NO_COOKIE in said and HTTPS_ONLY.format(url=lan_url(server)) in said
    assert BARE_CSRF not in said
    assert page.context.cookies() == []  # Chromium kept no Secure cookie from http://admin.lan
    screenshot(page, "login-over-http-refused")
    assert "the HTTPS-only session cookie did not come back" in (server.log_dir / "error.log").read_text()


def test_with_the_cookie_let_over_plain_http_the_lan_login_works(lan_browser, fake, start_proxy, tmp_path):
    config = admin_config(fake.url, tmp_path)
    del config["admin"]["cookie_secure"]  # true by default: the environment file, as on the VM, says false
    server = start_proxy(config, workers=1, env={"OLLAMA_PROXY_ADMIN_COOKIE_SECURE": "false"})
    page = new_page(lan_browser)
    page.goto(lan_url(server) + "/admin")
    assert page.locator(".flash.warn").all_inner_texts() == []

    answer = submit_login(page, lan_url(server))
    assert answer.status == 302
    page.wait_for_url(lan_url(server) + "/admin")
    assert page.locator("h1").first.inner_text().startswith("Dashboard")
    [cookie] = page.context.cookies()
    assert (cookie["domain"], cookie["secure"]) == (LAN_HOST, False)
    assert page.script_errors == []


def login_page_warning(url: str, headers: dict) -> str:
    found = WARNING.search(requests.get(url + "/admin/login", headers=headers, timeout=30).text)
    return found.group(1) if found else ""


def test_behind_nginx_the_forwarded_scheme_and_host_decide_the_warning(fake, start_proxy, tmp_path):
    config = admin_config(fake.url, tmp_path, cookie_secure=True)
    config["service"]["trusted_proxies"] = 1
    server = start_proxy(config, workers=1)
    # What deploy/nginx.conf sends: the browser's scheme and host, nginx itself connecting from 127.0.0.1.
    over_http = {"Host": "admin.lan", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "admin.lan:8080",
                 "X-Forwarded-For": "192.168.1.9"}
    assert login_page_warning(server.url, over_http).startswith(HTTPS_ONLY.format(url="http://admin.lan:8080"))
    assert login_page_warning(server.url, {**over_http, "X-Forwarded-Proto": "https"}) == ""
    assert login_page_warning(server.url, {**over_http, "X-Forwarded-Host": "127.0.0.1:8080"}) == ""
    assert login_page_warning(server.url, {}) == ""  # reached on this machine


def test_a_lan_login_post_without_its_cookie_is_explained(fake, start_proxy, tmp_path):
    server = start_proxy(admin_config(fake.url, tmp_path, cookie_secure=True), workers=1)
    lan = {"Host": "admin.lan:8080"}  # no proxy trusted: the Host header is the browser's
    session = requests.Session()
    page = session.get(server.url + "/admin/login", headers=lan, timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = session.post(server.url + "/admin/login", headers=lan, timeout=30, allow_redirects=False,
                           data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert refused.status_code == 400 and refused.headers["Content-Type"].startswith("text/html")
    assert NO_COOKIE in refused.text and HTTPS_ONLY.format(url="http://admin.lan:8080") in refused.text
    assert BARE_CSRF not in refused.text
