"""The admin page's login in a real browser: sessions, cookie flags, CSRF, lockout, the page off."""

from __future__ import annotations

import re

import pytest
import requests
import yaml

from tests.e2e.admin_page import ATTEMPTS, PASSWORD, admin_config, csrf_token
from tests.e2e.browser import close_pages, new_page, screenshot
from tests.e2e.server import ProxyServer, free_port


def start_admin(upstream_url: str, workdir, backends=(), **admin) -> ProxyServer:
    # Two workers: the failed-login count is shared between them (ratelimit.storage_url).
    config = admin_config(upstream_url, workdir, **admin)
    config["backends"] = list(backends)
    return ProxyServer(config, workdir, workers=2).start()


@pytest.fixture(scope="module")
def admin(fake_server, tmp_path_factory):
    # A second Ollama server that nothing answers on, for the backends page to show down.
    down = {"name": "gpu-down", "type": "ollama", "base_url": f"http://127.0.0.1:{free_port()}"}
    server = start_admin(fake_server.url, tmp_path_factory.mktemp("admin"), backends=[down])
    yield server
    server.stop()


@pytest.fixture
def lockable(fake, tmp_path):
    """A server of its own, for a test that locks the administrator out."""
    server = start_admin(fake.url, tmp_path)
    yield server
    close_pages()  # the test's page first: its connections would hold the workers' stop
    server.stop()


def fake_url(server: ProxyServer) -> str:
    return yaml.safe_load(server.config_path.read_text())["service"]["base_url"]


def down_url(server: ProxyServer) -> str:
    return yaml.safe_load(server.config_path.read_text())["backends"][0]["base_url"]


def log_in(page, url: str, password: str = PASSWORD, username: str = "admin"):
    page.goto(url + "/admin")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_login_shows_the_dashboard_and_sets_a_guarded_cookie(browser, admin):
    page = new_page(browser)
    page.goto(admin.url + "/admin/backends")
    assert page.url == admin.url + "/admin/login?next=/admin/backends"
    screenshot(page, "login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(admin.url + "/admin/backends")
    assert page.locator("h1").inner_text().startswith("Backends")
    states = page.locator("tbody tr").all_inner_texts()
    assert [row.split("\t")[:4] for row in states] == [
        ["default", "ollama", fake_url(admin), "ok"], ["gpu-down", "ollama", down_url(admin), "down"]]
    screenshot(page, "backends")
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["path"], cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) \
        == ("ollama_proxy_admin", "/admin", True, "Lax", False)
    page.click("text=Log out")
    page.wait_for_url(re.compile(r".*/admin/login$"))
    page.goto(admin.url + "/admin")
    assert "/admin/login" in page.url
    assert page.script_errors == []


def test_a_wrong_password_is_refused_then_the_client_is_locked_out(browser, lockable):
    admin = lockable
    page = new_page(browser)
    for _ in range(ATTEMPTS):
        log_in(page, admin.url, password="wrong password")
        assert page.locator(".flash.error").inner_text() == "Wrong user name or password."
    log_in(page, admin.url)  # the right password, too late
    assert page.locator(".flash.error").inner_text().startswith("Too many failed attempts")
    assert "/admin/login" in page.url
    screenshot(page, "locked-out")
    errors = (admin.log_dir / "error.log").read_text()
    assert PASSWORD not in errors and "wrong password" not in errors
    assert errors.count("admin login failed for 'admin' from 127.0.0.1") == ATTEMPTS


def test_the_lockout_counts_per_user_name(browser, admin):
    page = new_page(browser)
    for _ in range(ATTEMPTS + 1):
        log_in(page, admin.url, username="mallory", password=PASSWORD)
    log_in(page, admin.url)
    page.wait_for_url(admin.url + "/admin")
    errors = (admin.log_dir / "error.log").read_text()
    assert "mallory" not in errors  # what is typed as a name may be a password: only the known name is logged
    assert errors.count("admin login failed for an unknown user name") == ATTEMPTS
    assert errors.count("admin login locked for an unknown user name") == 1


def test_a_form_without_its_csrf_token_is_refused(admin):
    session = requests.Session()
    token = csrf_token(session, admin.url)
    refused = session.post(admin.url + "/admin/login", data={"username": "admin", "password": PASSWORD},
                           allow_redirects=False)
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "CSRF token is missing" in refused.text
    forged = session.post(admin.url + "/admin/login", allow_redirects=False,
                          data={"username": "admin", "password": PASSWORD, "csrf_token": token[::-1]})
    assert forged.status_code == 400
    accepted = session.post(admin.url + "/admin/login", allow_redirects=False,
                            data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert (accepted.status_code, accepted.headers["Location"]) == (302, "/admin")
    other_session = requests.Session()  # a token is bound to its session: another's is refused
    stolen = other_session.post(admin.url + "/admin/login", allow_redirects=False,
                                data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert stolen.status_code == 400


def test_login_never_redirects_off_the_admin_page(admin):
    session = requests.Session()
    token = csrf_token(session, admin.url)
    answer = session.post(admin.url + "/admin/login", allow_redirects=False, data={
        "username": "admin", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/admin"})
    assert answer.headers["Location"] == "/admin"


def test_the_secure_setting_marks_the_cookie(fake, start_proxy, tmp_path):
    server = start_proxy(admin_config(fake.url, tmp_path, cookie_secure=True), workers=1)
    answer = requests.get(server.url + "/admin/login")  # the session starts here, holding the CSRF token
    flags = [part.strip() for part in answer.headers["Set-Cookie"].split(";")]
    assert {"Secure", "HttpOnly", "SameSite=Lax", "Path=/admin"} <= set(flags)


def test_the_cookie_is_sent_over_https_only_unless_configured_otherwise(fake, start_proxy, tmp_path):
    config = admin_config(fake.url, tmp_path)
    del config["admin"]["cookie_secure"]
    server = start_proxy(config, workers=1)
    flags = [part.strip() for part in requests.get(server.url + "/admin/login").headers["Set-Cookie"].split(";")]
    assert "Secure" in flags


def test_without_a_password_hash_the_page_is_off(browser, proxy):
    page = new_page(browser)
    answer = page.goto(proxy.url + "/admin")
    assert answer.status == 404
    assert "ollama-proxy admin-password" in page.locator("main").inner_text()
    assert page.goto(proxy.url + "/admin/login").status == 404
    screenshot(page, "off")
    assert "ollama-proxy admin-password" in proxy.stderr()


def test_the_lockout_holds_across_workers(lockable):
    session = requests.Session()
    session.headers["Connection"] = "close"  # a new connection each time: either worker may take it
    token = csrf_token(session, lockable.url)
    form = {"username": "admin", "csrf_token": token}
    statuses = [session.post(lockable.url + "/admin/login", data={**form, "password": "nope"}).status_code
                for _ in range(ATTEMPTS)]
    locked = session.post(lockable.url + "/admin/login", data={**form, "password": PASSWORD}, allow_redirects=False)
    assert statuses == [401] * ATTEMPTS
    assert locked.status_code == 429 and 1 <= int(locked.headers["Retry-After"]) <= 300
