"""Who holds limits and budgets: a key never takes a token's name, a member's keys are capped, and a budget
dies with its holder (through the real server, two workers)."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import requests

from tests.actors import TESTER
from tests.e2e.admin_page import PASSWORD, admin_config, csrf_token
from tests.e2e.browser import close_pages
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


def _usage_lines(proxy, by: str) -> dict[str, int]:
    """The month's usage report by key or team, as ``ollama-proxy usage --by`` prints it: requests per line."""
    done = cli(proxy, "usage", "--by", by, "--format", "json")
    assert done.returncode == 0, done.stderr
    return {line["name"]: line["requests"] for line in json.loads(done.stdout)["lines"]}


def _spend_rpm(proxy, secret: str) -> list[int]:
    """Send three requests: a key (or team) of rpm 2 is refused the third."""
    return [_chat(proxy, secret).status_code for _ in range(3)]


def _id_of(proxy, kind: str, name: str) -> int:
    store = proxy.open_store()
    try:
        return (store.get_key(name) if kind == "key" else store.get_team(name)).id
    finally:
        store.close()


def _held_by_id_config(upstream_url: str) -> dict:
    config = base_config(upstream_url)
    config["usage"] = {"flush_interval": 0.1}
    config["budgets"] = {"cache_seconds": 0}
    return config


def test_a_re_made_key_has_a_rate_window_of_its_own_and_its_own_line_in_the_usage(start_proxy, fake):
    """A key deleted and made again under its name is another key: counted by id, shown by name."""
    proxy = start_proxy(_held_by_id_config(fake.url), workers=2)
    old = create_key(proxy, "--name", "carol", "--rpm", "2")
    assert _spend_rpm(proxy, old) == [200, 200, 429]
    old_id = _id_of(proxy, "key", "carol")
    assert cli(proxy, "keys", "delete", "carol").returncode == 0
    new = create_key(proxy, "--name", "carol", "--rpm", "2")
    assert _spend_rpm(proxy, new) == [200, 200, 429]  # its own window: not the old one's, still full
    assert wait_for(lambda: sum(_usage_lines(proxy, "key").values()) == 6, timeout=10)
    assert _usage_lines(proxy, "key") == {f"carol (key #{old_id}, deleted)": 3, "carol": 3}
    exported = list(csv.DictReader(io.StringIO(cli(proxy, "usage", "--key", "carol").stdout)))
    assert len({row["key_id"] for row in exported}) == 2 and {row["key_name"] for row in exported} == {"carol"}


def test_a_re_made_team_has_a_rate_window_of_its_own_and_its_own_line_in_the_usage(start_proxy, fake):
    proxy = start_proxy(_held_by_id_config(fake.url), workers=2)
    assert cli(proxy, "teams", "create", "lab", "--rpm", "2").returncode == 0
    assert _spend_rpm(proxy, create_key(proxy, "--name", "bot", "--team", "lab")) == [200, 200, 429]
    old_id = _id_of(proxy, "team", "lab")
    assert cli(proxy, "keys", "delete", "bot").returncode == 0
    assert cli(proxy, "teams", "delete", "lab").returncode == 0
    assert cli(proxy, "teams", "create", "lab", "--rpm", "2").returncode == 0
    refused = [_chat(proxy, create_key(proxy, "--name", name, "--team", "lab")) for name in ("bot", "other", "third")]
    assert [answer.status_code for answer in refused] == [200, 200, 429]  # the new team's own window
    assert "team 'lab' sent its 2 requests per minute" in refused[-1].json()["error"]
    assert wait_for(lambda: sum(_usage_lines(proxy, "team").values()) == 6, timeout=10)
    assert _usage_lines(proxy, "team") == {f"lab (team #{old_id}, deleted)": 3, "lab": 3}


@pytest.mark.postgres
@pytest.mark.redis
def test_two_instances_count_a_re_made_key_by_one_id_in_redis(start_proxy, postgres_cluster, redis_server):
    """Two instances of two workers, one PostgreSQL store, Redis for the limits and the shared scheduler: a key's
    id comes from the store, so both count its one window, and a key made again under its name has a new one."""
    from tests.fakes.ollama import FakeOllama

    with FakeOllama(num_parallel=2, max_loaded_models=1) as gpu:
        config = _held_by_id_config(gpu.url)
        config["service"].update(scheduling=True, num_parallel=2, max_loaded_models=1)
        config["store"] = {"url": postgres_cluster.new_database()}
        config["ratelimit"] = {"storage_url": redis_server.url}
        first, second = (start_proxy(copy.deepcopy(config), workers=2) for _ in range(2))
        for _ in range(2):
            secret = create_key(first, "--name", "carol", "--rpm", "2")
            assert [_chat(proxy, secret).status_code for proxy in (first, second, first, second)] == [
                200, 200, 429, 429]
            assert cli(first, "keys", "delete", "carol").returncode == 0
        assert wait_for(lambda: len(_usage_lines(second, "key")) == 2, timeout=10)
        assert sorted(_usage_lines(second, "key").values()) == [4, 4]


STALL = 10.0  # seconds the slow answer pauses after its first chunk


def test_a_request_of_a_deleted_key_ending_after_it_was_made_again_charges_nothing_to_the_new_one(start_proxy):
    from tests.fakes.ollama import FakeOllama

    with FakeOllama() as slow:
        slow.script("llama3.2", stall_after=1, stall_seconds=STALL)  # a chunk, then a pause while the key changes
        proxy = start_proxy(_held_by_id_config(slow.url), workers=2)
        budget = ("budgets", "set", "--key", "carol", "--period", "day", "--tokens", "100000")
        old = create_key(proxy, "--name", "carol")
        assert cli(proxy, *budget).returncode == 0
        with requests.post(proxy.url + "/api/chat", headers={"Authorization": f"Bearer {old}"}, stream=True,
                           timeout=30, json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}
                           ) as streaming:
            lines = streaming.iter_lines()
            assert json.loads(next(lines))["done"] is False  # checked against the old key's budget, running
            started = time.monotonic()
            assert cli(proxy, "keys", "delete", "carol").returncode == 0
            create_key(proxy, "--name", "carol")
            assert cli(proxy, *budget).returncode == 0
            assert time.monotonic() - started < STALL  # the new key and its budget were there before it ended
            assert json.loads(list(lines)[-1])["done"] is True
        assert wait_for(lambda: len(cli(proxy, "usage", "--key", "carol").stdout.splitlines()) == 2, timeout=10)
        assert [b["spent"] for b in _held(proxy, "key", "carol")] == [0]  # the old key's tokens are not the new's


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
        close_pages()  # the test's pages first: their connections would hold the workers' stop
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
        for person in ("mia", "leo"):  # as their sign-ins do: a key made on My keys stands on its owner
            store.confirm_member(person, name=person, role="member", team="research", refresh_token=None,
                                 now=datetime.now(timezone.utc))
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
