"""The admin pages in a real browser, over the real server and its store."""

from __future__ import annotations

import base64
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import openai
import pytest
import requests

from ollama_proxy.store.budgets import period_bounds
from tests.actors import TESTER
from tests.e2e.admin_page import PASSWORD, admin_config, form_token, session_cookies, session_payload, signed_in
from tests.e2e.browser import new_page, screenshot
from tests.e2e.command import cli
from tests.e2e.conftest import ALICE, auth
from tests.e2e.server import ProxyServer
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_provider import PROVIDER_KEY

SECRET_PATTERN = re.compile(r"op-[A-Za-z0-9_-]{20,}")


@pytest.fixture(scope="module")
def admin(fake_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("admin-pages")
    config = admin_config(fake_server.url, workdir)
    config["models"] = {"aliases": {"house-model": "qwen3:8b"}}
    server = ProxyServer(config, workdir).start()
    yield server
    server.stop()


def logged_in(browser, url: str):
    page = new_page(browser)
    page.goto(url + "/admin/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click(".login button[type=submit]")
    page.wait_for_url(url + "/admin")
    return page


@pytest.fixture
def page(browser, admin, fake):
    page = logged_in(browser, admin.url)
    yield page
    assert page.script_errors == []
    page.context.close()


def create_key(page, url: str, name: str, models: str = "") -> str:
    page.goto(url + "/admin/keys")
    page.fill("#new-key input[name=name]", name)
    page.fill("#new-key input[name=models]", models)
    page.click("#new-key button[type=submit]")
    return page.locator("#secret").inner_text()


def test_a_new_key_calls_the_proxy_and_the_call_shows_on_the_dashboard(page, admin):
    secret = create_key(page, admin.url, "sdk-key")
    assert SECRET_PATTERN.fullmatch(secret)
    screenshot(page, "key-created")
    client = openai.OpenAI(base_url=admin.url + "/v1", api_key=secret, max_retries=0)
    answer = client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content == "You said: hello"

    row = page.locator("#per-key tr", has_text="sdk-key")
    for _ in range(40):  # usage rows are written in batches, every usage.flush_interval seconds
        page.goto(admin.url + "/admin")
        if row.count():
            break
        page.wait_for_timeout(250)
    assert [row.locator("td").nth(n).inner_text() for n in (1, 2, 3)] == ["1", str(answer.usage.total_tokens), "0"]
    page.goto(admin.url + "/admin/usage?key=sdk-key")
    assert page.locator("select[name=key] option", has_text="alice").count() == 1  # a named token of the file
    usage_row = page.locator("#usage-rows tbody tr").inner_text().split("\t")
    assert usage_row[1:5] == ["sdk-key", "openai", "llama3.2", "default"]
    assert usage_row[5:7] == [str(answer.usage.prompt_tokens), str(answer.usage.completion_tokens)]


def test_a_new_keys_secret_never_rides_in_the_cookie_and_is_shown_once_whichever_worker_answers(admin):
    client = signed_in(admin.url)
    store = admin.open_store(migrate=False)
    try:
        for name in ("cookie-key-1", "cookie-key-2", "cookie-key-3"):  # each request a new connection
            made = client.post(admin.url + "/admin/keys", allow_redirects=False, timeout=30, data={
                "csrf_token": form_token(client, admin.url + "/admin/keys"), "name": name, "scope": "generate",
                "chat_log": "global", "weight": "1", "klass": "interactive"})
            assert made.status_code == 303, made.text[:300]
            shown = client.get(admin.url + made.headers["Location"], timeout=30)
            secret = SECRET_PATTERN.search(shown.text).group(0)
            assert store.find_key(secret).name == name
            cookies = session_cookies(made) + session_cookies(shown)
            assert session_cookies(made) and all(session_payload(cookie) for cookie in cookies)
            assert not [cookie for cookie in cookies if secret in session_payload(cookie) or secret in cookie]
            again = client.get(admin.url + made.headers["Location"], timeout=30)
            assert again.status_code == 200 and "cannot be shown again" in again.text
            assert SECRET_PATTERN.search(again.text) is None
    finally:
        store.close()


def test_another_keys_created_page_leaves_a_secret_still_to_be_shown(admin):
    client = signed_in(admin.url)

    def make(name: str) -> str:
        made = client.post(admin.url + "/admin/keys", allow_redirects=False, timeout=30, data={
            "csrf_token": form_token(client, admin.url + "/admin/keys"), "name": name, "scope": "generate",
            "chat_log": "global", "weight": "1", "klass": "interactive"})
        assert made.status_code == 303, made.text[:300]
        return admin.url + made.headers["Location"]

    shown_before = client.get(make("earlier-key"), timeout=30)
    assert SECRET_PATTERN.search(shown_before.text)
    pending = make("pending-key")
    for other in ("/admin/keys/earlier-key/created", "/admin/keys/earlier-key/rotated",
                  "/admin/keys/no-such-key/created"):
        elsewhere = client.get(admin.url + other, timeout=30)
        assert elsewhere.status_code in (200, 404) and SECRET_PATTERN.search(elsewhere.text) is None, other
    shown = client.get(pending, timeout=30)
    store = admin.open_store(migrate=False)
    try:
        assert store.find_key(SECRET_PATTERN.search(shown.text).group(0)).name == "pending-key"
    finally:
        store.close()
    assert SECRET_PATTERN.search(client.get(pending, timeout=30).text) is None  # still once


def test_the_dashboard_charts_and_the_usage_page_read_the_usage_table(page, admin):
    today = datetime.now(timezone.utc).replace(hour=0, minute=30)
    store = admin.open_store(migrate=False)
    try:
        store.add_usage([usage_row(today, "chart-key", "llama3.2", 7, 9, 200),
                         usage_row(today, "chart-key", "qwen3:8b", 3, 0, 502),
                         usage_row(today - timedelta(days=40), "chart-key", "llama3.2", 1, 1, 200)])
    finally:
        store.close()
    page.goto(admin.url + "/admin")
    row = page.locator("#per-key tr", has_text="chart-key")
    assert [row.locator("td").nth(n).inner_text() for n in (1, 2, 3)] == ["2", "19", "1"]
    assert page.locator("#per-model td", has_text="qwen3:8b").count() == 1
    page.wait_for_function("() => Chart.getChart('chart-requests') !== undefined")
    daily = page.evaluate("() => Chart.getChart('chart-errors').data.datasets[0].data")
    assert len(daily) == 30 and daily[-1] == 1 and sum(daily) == 1
    screenshot(page, "dashboard")

    page.goto(admin.url + "/admin/usage?key=chart-key")
    rows = page.locator("#usage-rows tbody tr")
    assert rows.count() == 2 and "502" in rows.nth(0).inner_text()  # newest first; the same moment: later row first
    screenshot(page, "usage")
    with page.expect_download() as download:
        page.click("#export-csv")
    with open(download.value.path()) as file:
        lines = file.read().splitlines()
    assert lines[0].startswith("ts,request_id,key_name") and len(lines) == 3
    assert all(",chart-key," in line for line in lines[1:])


def usage_row(ts, key: str, model: str, prompt: int, completion: int, status: int) -> dict:
    return {"ts": ts, "key_name": key, "surface": "openai", "model": model, "backend": "default",
            "prompt_tokens": prompt, "completion_tokens": completion, "duration_ms": 40.0, "status": status}


# The admin page's colours (admin.css), to tell which one a meter is drawn in.
COLOURS = {"green": (0x1a, 0x7f, 0x46), "red": (0xc0, 0x39, 0x2b), "amber": (0xb7, 0x79, 0x1f)}


def drawn_colour(page, element) -> str:
    """Name the admin colour nearest to what the browser drew near the left end of ``element`` (a meter's fill)."""
    png = base64.b64encode(element.screenshot()).decode()
    pixel = page.evaluate("""async png => {
        const image = new Image();
        image.src = "data:image/png;base64," + png;
        await image.decode();
        const canvas = document.createElement("canvas");
        [canvas.width, canvas.height] = [image.width, image.height];
        const context = canvas.getContext("2d");
        context.drawImage(image, 0, 0);
        return Array.from(context.getImageData(image.width / 10, image.height / 2, 1, 1).data.slice(0, 3));
    }""", png)
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], pixel, strict=True)))


def test_a_budget_meter_is_green_then_red_when_a_hard_budget_is_spent_amber_a_soft_one(page, admin):
    spending = {"meter-under": ("hard", 50), "meter-over-hard": ("hard", 250), "meter-over-soft": ("soft", 250)}
    start, _ = period_bounds("day", datetime.now(timezone.utc), timezone.utc)
    store = admin.open_store(migrate=False)
    try:
        for name, (mode, spent) in spending.items():
            store.create_key(name, by=TESTER)
            store.set_budget("key", name, period="day", unit="tokens", amount=200, mode=mode, by=TESTER)
            store.charge([(("key", name, "day", "tokens"), start, spent)])
    finally:
        store.close()
    page.goto(admin.url + "/admin/usage/report?by=key&period=day")
    meters = {name: page.locator("#report-lines tbody tr", has_text=name).locator("meter") for name in spending}
    assert "250 of 200 tokens" in page.locator("#report-lines tbody tr", has_text="meter-over-hard").inner_text()
    screenshot(page, "usage-report-budgets")
    assert {name: drawn_colour(page, meter) for name, meter in meters.items()} == {
        "meter-under": "green", "meter-over-hard": "red", "meter-over-soft": "amber"}


def test_no_page_shows_a_secret_after_its_creation_page(page, admin):
    secret = create_key(page, admin.url, "quiet-key", models="llama3* qwen3:8b")
    assert page.url == admin.url + "/admin/keys/quiet-key/created"  # redirected: no secret in the URL
    page.reload()
    assert page.locator("#secret").count() == 0 and secret not in page.content()
    assert "cannot be shown again" in page.locator("#secret-gone").inner_text()
    for path in ("/admin", "/admin/keys", "/admin/keys/quiet-key", "/admin/usage", "/admin/models",
                 "/admin/backends"):
        page.goto(admin.url + path)
        assert secret not in page.content(), path
        assert secret[len("op-") + 12:] not in page.content(), path
    cookies = " ".join(c["value"] for c in page.context.cookies())
    assert secret not in cookies
    assert secret not in (admin.log_dir / "access.log").read_text() + (admin.log_dir / "error.log").read_text()


def test_a_key_is_edited_disabled_and_deleted(page, admin):
    secret = create_key(page, admin.url, "short-lived")
    client = openai.OpenAI(base_url=admin.url + "/v1", api_key=secret, max_retries=0)
    page.goto(admin.url + "/admin/keys/short-lived")
    page.fill("#edit-key input[name=models]", "qwen3:8b")
    page.fill("#edit-key input[name=rpm]", "60")
    page.select_option("#edit-key select[name=chat_log]", "on")
    page.click("#edit-key button[type=submit]")
    row = page.locator("tr[data-key='short-lived']")
    assert "qwen3:8b" in row.inner_text() and "60" in row.inner_text()
    assert row.locator("td.chat-log").inner_text() == "on"
    screenshot(page, "keys")
    row.locator("button", has_text="Disable").click()
    assert "disabled" in page.locator("tr[data-key='short-lived']").inner_text()
    page.wait_for_timeout(200)
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-key='short-lived'] button", has_text="Delete").click()
    page.wait_for_load_state()
    assert page.locator("tr[data-key='short-lived']").count() == 0
    assert "Key 'short-lived' deleted." in page.locator(".flash").inner_text()
    with pytest.raises(openai.AuthenticationError):
        for _ in range(30):  # a worker trusts what it read of a key for auth.key_cache_seconds
            client.models.list()
            page.wait_for_timeout(250)


def test_a_key_made_to_expire_after_a_day_shows_that_day_and_keeps_its_expiry_when_saved(page, admin):
    last_day = f"{datetime.now(timezone.utc).year + 1}-01-31"
    made = cli(admin, "keys", "create", "--name", "january", "--expires", last_day)
    assert made.returncode == 0, made.stderr
    stops_working = datetime.fromisoformat(last_day).replace(tzinfo=timezone.utc) + timedelta(days=1)
    page.goto(admin.url + "/admin/keys")
    assert page.locator("tr[data-key='january'] td").nth(6).inner_text() == last_day
    page.goto(admin.url + "/admin/keys/january")
    assert page.input_value("#edit-key input[name=expires]") == last_day
    page.click("#edit-key button[type=submit]")
    assert "Key 'january' saved." in page.locator(".flash").inner_text()
    store = admin.open_store(migrate=False)
    try:
        assert store.get_key("january").expires_at == stops_working
    finally:
        store.close()
    listing = cli(admin, "keys", "list").stdout.splitlines()
    assert last_day in next(line for line in listing if line.startswith("january")).split()


def test_the_browser_icon_is_served_without_a_token_and_every_page_names_it(browser, admin):
    answer = requests.get(admin.url + "/favicon.ico", timeout=10)
    assert answer.status_code == 200 and answer.content.startswith(b"\0\0\1\0")  # an ICO file
    assert answer.headers["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    page = new_page(browser)
    errors = []  # new_page lets "Failed to load resource" by: a refused login is one, but not here
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(admin.url + "/admin/login")
    named = page.evaluate("() => document.querySelector('link[rel=icon]').href")
    assert requests.get(named, timeout=10).content == answer.content  # the same icon, beside the page's styles
    page.wait_for_timeout(500)  # the browser asks for the icon once the page is shown
    assert errors == []
    page.context.close()


def test_a_bad_key_form_is_refused_with_the_reason(page, admin):
    page.goto(admin.url + "/admin/keys")
    page.fill("#new-key input[name=name]", "no spaces please")
    page.click("#new-key button[type=submit]")
    assert "letters, digits" in page.locator("#new-key").inner_text()
    assert page.locator("#secret").count() == 0


def test_aliases_and_overrides_are_checked_saved_and_removed(page, admin):
    page.goto(admin.url + "/admin/models")
    assert page.locator("#backend-models td", has_text="qwen3:8b").count() == 1
    from_file = page.locator("#aliases tr.from-file").inner_text().split("\t")
    assert from_file == ["house-model", "qwen3:8b", "configuration file"]
    page.fill("#alias-form input[name=alias-alias]", "qwen3:8b")
    page.fill("#alias-form input[name=alias-target]", "llama3.2:latest")
    page.click("#alias-form button[type=submit]")
    assert "would hide it" in page.locator("#alias-form").inner_text()
    page.fill("#alias-form input[name=alias-alias]", "gpt-4o")
    page.fill("#alias-form input[name=alias-target]", "no-such-model")
    page.click("#alias-form button[type=submit]")
    assert "no backend serves 'no-such-model'" in page.locator("#alias-form").inner_text()
    page.fill("#alias-form input[name=alias-target]", "llama3.2:latest")
    page.click("#alias-form button[type=submit]")
    assert page.locator("#aliases tr", has_text="gpt-4o").inner_text().split("\t")[:2] == ["gpt-4o", "llama3.2:latest"]

    page.fill("#override-form input[name=override-model]", "qwen3:8b")
    page.fill("#override-form textarea[name=override-defaults]", '{"temperature": 0.2')
    page.click("#override-form button[type=submit]")
    assert "not JSON" in page.locator("#override-form").inner_text()
    page.fill("#override-form textarea[name=override-defaults]", '{"timeout": -1}')
    page.click("#override-form button[type=submit]")
    assert "timeout is a number of seconds above 0" in page.locator("#override-form").inner_text()
    page.fill("#override-form textarea[name=override-defaults]", '{"temperature": 0.2}')
    page.fill("#override-form textarea[name=override-enforce]", '{"num_ctx": 8192}')
    page.click("#override-form button[type=submit]")
    assert '{"num_ctx": 8192}' in page.locator("#overrides tr", has_text="qwen3:8b").inner_text()
    screenshot(page, "models")

    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#aliases tr", has_text="gpt-4o").locator("button").click()
    page.wait_for_load_state()
    page.locator("#overrides tr", has_text="qwen3:8b").locator("button").click()
    page.wait_for_load_state()
    assert "No aliases." in page.locator("#aliases").inner_text()
    assert "No overrides." in page.locator("#overrides").inner_text()


@pytest.fixture(scope="module")
def provider_admin(fake_server, provider_server, tmp_path_factory):
    """The admin page over an Ollama server and a provider whose models are its own ``GET /models``."""
    workdir = tmp_path_factory.mktemp("admin-provider")
    config = admin_config(fake_server.url, workdir)
    config["backends"] = [{"name": "fakeai", "type": "openai", "base_url": provider_server.base_url,
                           "api_key_env": "FAKEAI_API_KEY"}]
    server = ProxyServer(config, workdir, env={"FAKEAI_API_KEY": PROVIDER_KEY}).start()
    yield server
    server.stop()


def test_a_providers_models_show_on_the_backends_and_models_pages_as_api_tags_lists_them(
        browser, provider_admin, fake, provider):
    url = provider_admin.url
    listed = requests.get(url + "/api/tags", headers=auth(ALICE), timeout=30).json()["models"]
    provided = sorted(model["name"] for model in listed if model["name"].startswith("fakeai:"))
    assert provided == ["fakeai:fake-chat", "fakeai:fake-embed", "fakeai:fake-reasoner"]
    page = logged_in(browser, url)
    page.goto(url + "/admin/backends")
    row = page.locator("tbody tr", has_text="fakeai").locator("td").all_inner_texts()
    assert row[:2] == ["fakeai", "openai"] and row[5] == str(len(provided))
    assert re.fullmatch(r"\d+(\.\d+)? ms", row[6]), row[6]  # how long its model list took to come
    screenshot(page, "backends")
    page.goto(url + "/admin/models")
    rows = page.locator("#backend-models tbody tr", has_text="fakeai")
    assert sorted(cells[0] for cells in (r.locator("td").all_inner_texts() for r in rows.all())) == provided
    assert page.locator("#backend-models td", has_text="llama3.2").count() >= 1
    assert page.script_errors == []
    page.context.close()


SLOT = {"num_parallel": 1, "max_loaded_models": 1}  # one request at a time: the next one waits in the proxy


@pytest.fixture(scope="module")
def gpu():
    server = FakeOllama(**SLOT).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scheduled_admin(gpu, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("admin-scheduler")
    config = admin_config(gpu.url, workdir)
    config["service"].update(scheduling=True, **SLOT)
    config["scheduling"] = {"interactive_headroom": 0}  # a batch key may take the one slot people just used
    server = ProxyServer(config, workdir, workers=2).start()
    yield server
    server.stop()


def _stream(url: str, token: str, text: str, num_ctx: int) -> requests.Response:
    """Open a chat stream; it returns once the proxy has granted it a slot and the first line came."""
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": text}], "options": {"num_ctx": num_ctx}}
    answer = requests.post(url + "/api/chat", headers=auth(token), json=body, stream=True, timeout=60)
    answer.raw.readline()
    return answer


def cells(page, table: str, has_text: str) -> list[str]:
    return page.locator(f"#{table} tbody tr", has_text=has_text).first.locator("td").all_inner_texts()


def test_the_scheduler_page_shows_live_who_runs_and_who_waits_and_a_keys_share_is_set_in_its_form(
        browser, scheduled_admin, gpu):
    url = scheduled_admin.url
    page = logged_in(browser, url)
    page.goto(url + "/admin/keys")
    page.fill("#new-key input[name=name]", "nightly-bot")
    page.fill("#new-key input[name=weight]", "0.5")
    page.select_option("#new-key select[name=klass]", "batch")
    page.click("#new-key button[type=submit]")
    secret = page.locator("#secret").inner_text()
    page.goto(url + "/admin/keys")
    row = page.locator("tr[data-key='nightly-bot']")
    assert [row.locator(f"td.share .{name}").inner_text() for name in ("weight", "class")] == ["0.5", "batch"]
    assert row.locator("td.share .front-end").count() == 0

    gpu.script("llama3.2", reply=" ".join(["word"] * 600), chunk_delay=0.05)  # half a minute, unless closed
    with ThreadPoolExecutor(1) as pool:
        running = _stream(url, ALICE, "first", 4096)
        waiting = pool.submit(_stream, url, secret, "second", 2048)
        page.goto(url + "/admin/scheduler")
        page.locator("#scheduler-waiting tbody tr", has_text="nightly-bot").wait_for()  # drawn, or polled in
        assert cells(page, "scheduler-running", "alice")[:4] == ["alice", "interactive", "llama3.2:latest", "default"]
        assert cells(page, "scheduler-waiting", "nightly-bot")[:4] == ["1", "nightly-bot", "batch", "llama3.2:latest"]
        assert cells(page, "scheduler-servers", "default")[:5] == ["default", "1 / 1", "llama3.2:latest",
                                                                   "num_ctx 4096", "1 / 1"]
        held = cells(page, "scheduler-prompts", "alice")  # the prompt alice's slot caches, in use
        assert [held[0], held[2], held[3], held[5]] == ["default", "slot 0", "alice", "in use"]
        screenshot(page, "scheduler")
        running.close()  # alice leaves: the slot goes to the key that waited, and the page shows it unreloaded
        page.locator("#scheduler-running tbody tr", has_text="nightly-bot").wait_for()
        page.locator("#scheduler-waiting tbody tr", has_text="Nobody waits.").wait_for()
        assert page.locator("#scheduler-running tbody tr", has_text="alice").count() == 0
        waiting.result().close()
    page.locator("#scheduler-running tbody tr", has_text="Nothing runs.").wait_for()
    assert page.script_errors == []
    page.context.close()
