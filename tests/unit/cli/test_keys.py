from __future__ import annotations

import argparse
import re
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone

import pytest

from ollama_proxy.cli import main
from ollama_proxy.cli.keys import expiry, future_expiry, table
from ollama_proxy.config import load_settings
from ollama_proxy.store import open_store
from tests.actors import TESTER

UTC = timezone.utc


@pytest.mark.parametrize("text, moment", [
    ("2027-01-31", datetime(2027, 2, 1, tzinfo=UTC)),  # works through the 31st
    ("2027-01-31T12:30", datetime(2027, 1, 31, 12, 30, tzinfo=UTC)),
    ("2027-01-31T12:30:00+02:00", datetime(2027, 1, 31, 12, 30, tzinfo=timezone(timedelta(hours=2)))),
    ("2027-01-31 08:00:00Z", datetime(2027, 1, 31, 8, 0, tzinfo=UTC)),
])
def test_expiry(text, moment):
    assert expiry(text) == moment


@pytest.mark.parametrize("text", ["tomorrow", "2027-13-01", "31/01/2027", ""])
def test_expiry_refuses_what_it_cannot_read(text):
    with pytest.raises(argparse.ArgumentTypeError):
        expiry(text)


NOW = datetime(2027, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, moment", [
    ("2027-01-31", datetime(2027, 2, 1, tzinfo=UTC)),  # today: the key works through it
    ("2027-01-31T12:00:01", datetime(2027, 1, 31, 12, 0, 1, tzinfo=UTC)),
    ("2027-01-31T14:30:00+02:00", datetime(2027, 1, 31, 14, 30, tzinfo=timezone(timedelta(hours=2)))),
    ("2030-06-01", datetime(2030, 6, 2, tzinfo=UTC)),
])
def test_future_expiry_reads_what_expiry_reads(text, moment):
    assert future_expiry(text, now=NOW) == moment


@pytest.mark.parametrize("text", [
    "2027-01-30",  # yesterday
    "2020-01-01",
    "2027-01-31T12:00:00",  # now: a key is expired at its expiry
    "2027-01-31T13:59:00+02:00",  # 11:59 UTC
])
def test_future_expiry_refuses_a_moment_gone_by(text):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"{text} is in the past")):
        future_expiry(text, now=NOW)


def test_future_expiry_reads_the_clock_when_not_told():
    with pytest.raises(argparse.ArgumentTypeError, match="in the past"):
        future_expiry("2020-01-01")
    assert future_expiry("2999-12-31") == datetime(3000, 1, 1, tzinfo=UTC)


def test_table_aligns_columns():
    assert table(("name", "scope"), [("alice", "generate"), ("bo", "manage")]).splitlines() == [
        "name   scope",
        "alice  generate",
        "bo     manage",
    ]


def keys(config: str, *args: str) -> int:
    return main(["keys", args[0], "--config", config, *args[1:]])


def test_allow_web_on_create_and_later_allow_and_deny(store_config, capsys):
    assert keys(store_config, "create", "--name", "searcher", "--allow", "web") == 0
    assert ", allows web" in capsys.readouterr().out
    assert keys(store_config, "create", "--name", "plain") == 0
    assert "allows" not in capsys.readouterr().out
    assert keys(store_config, "list") == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["name"].split()[5] == "allows"
    assert "rpm -, tpm -  web" in rows["searcher"] and "rpm -, tpm -  -" in rows["plain"]
    assert keys(store_config, "allow", "plain", "web") == 0
    assert capsys.readouterr().out.strip() == "key 'plain' may use web"
    assert keys(store_config, "deny", "searcher", "web") == 0
    assert capsys.readouterr().out.strip() == "key 'searcher' may no longer use web"
    store = open_store(load_settings(store_config).store)
    try:
        assert (store.get_key("plain").web, store.get_key("searcher").web) == (True, False)
    finally:
        store.close()


def test_allow_cloud_on_create_and_later_allow_and_deny(store_config, capsys):
    assert keys(store_config, "create", "--name", "frontier", "--allow", "cloud") == 0
    assert ", allows cloud" in capsys.readouterr().out
    assert keys(store_config, "create", "--name", "both", "--allow", "web", "--allow", "cloud") == 0
    assert ", allows web, cloud" in capsys.readouterr().out
    assert keys(store_config, "create", "--name", "plain") == 0
    capsys.readouterr()
    assert keys(store_config, "list") == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "rpm -, tpm -  cloud" in rows["frontier"] and "rpm -, tpm -  web, cloud" in rows["both"]
    assert keys(store_config, "allow", "plain", "cloud") == 0
    assert capsys.readouterr().out.strip() == "key 'plain' may use cloud"
    assert keys(store_config, "deny", "frontier", "cloud") == 0
    assert capsys.readouterr().out.strip() == "key 'frontier' may no longer use cloud"
    store = open_store(load_settings(store_config).store)
    try:
        found = {name: store.get_key(name) for name in ("plain", "frontier", "both")}
        assert {name: (key.web, key.cloud) for name, key in found.items()} == {
            "plain": (False, True), "frontier": (False, False), "both": (True, True)}
    finally:
        store.close()


def test_list_shows_an_expiry_as_expires_took_it(store_config, capsys):
    assert keys(store_config, "create", "--name", "january", "--expires", "2999-01-31") == 0
    assert "expires 2999-01-31," in capsys.readouterr().out  # works through that day
    assert keys(store_config, "create", "--name", "noon", "--expires", "2999-01-31T12:30") == 0
    capsys.readouterr()
    assert keys(store_config, "list") == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "  2999-01-31  " in rows["january"] and "2999-02-01" not in rows["january"]
    assert "  2999-01-31 12:30 UTC  " in rows["noon"]


def test_only_known_permissions_are_allowed(store_config, capsys):
    with pytest.raises(SystemExit):
        keys(store_config, "create", "--name", "x", "--allow", "everything")
    assert "invalid choice: 'everything'" in capsys.readouterr().err
    assert keys(store_config, "allow", "nobody", "web") == 1
    assert "no key named 'nobody'" in capsys.readouterr().err


def test_a_keys_share_of_the_gpus_is_set_on_create_and_kept(store_config, capsys):
    assert keys(store_config, "create", "--name", "nightly", "--weight", "2", "--class", "batch") == 0
    assert "weight 2, class batch" in capsys.readouterr().out
    assert keys(store_config, "create", "--name", "webui", "--trusted-frontend") == 0
    assert "weight 1, class interactive, trusted front end" in capsys.readouterr().out
    store = open_store(load_settings(store_config).store)
    try:
        nightly, webui = store.get_key("nightly"), store.get_key("webui")
        assert (nightly.weight, nightly.klass, nightly.trusted_frontend) == (2.0, "batch", False)
        assert (webui.weight, webui.klass, webui.trusted_frontend) == (1.0, "interactive", True)
    finally:
        store.close()


@pytest.mark.parametrize("weight", ["0", "-1", "nan", "heavy"])
def test_a_weight_must_be_a_positive_number(store_config, capsys, weight):
    with pytest.raises(SystemExit):
        keys(store_config, "create", "--name", "x", "--weight", weight)
    assert "not a weight above 0" in capsys.readouterr().err


def test_list_shows_who_made_a_key_and_why_it_lapsed_with_their_membership(store_config, capsys):
    store = open_store(load_settings(store_config).store)
    try:
        store.create_team("red", by=TESTER)
        store.create_key("mia-laptop", team="red", owner="sub-mia", by=TESTER)
        store.create_key("ann-laptop", team="red", owner="sub-ann", by=TESTER)
        store.create_key("team-bot", team="red", by=TESTER)
        now = datetime.now(UTC)
        for subject in ("sub-mia", "sub-ann"):
            store.confirm_member(subject, name=subject, role="member", team="red", refresh_token=None, now=now)
        store.lose_member("sub-mia", "refresh token refused: invalid_grant", by=TESTER, now=now)
    finally:
        store.close()
    assert keys(store_config, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines}
    assert rows["name"].split()[-1] == "owner"
    assert rows["mia-laptop"].endswith("red   sub-mia (lapsed)")
    assert rows["ann-laptop"].endswith("red   sub-ann") and rows["team-bot"].endswith("red   -")
    assert lines[-1] == ("key 'mia-laptop' lapsed: the identity provider no longer vouches for its owner "
                         "(refresh token refused: invalid_grant)")


def test_rotate_prints_the_new_secret_last_and_keeps_the_key(store_config, capsys):
    assert main(["keys", "create", "--name", "ada", "--rpm", "60", "--config", store_config]) == 0
    old = capsys.readouterr().out.splitlines()[-1]
    assert main(["keys", "rotate", "ada", "--grace", "1h", "--config", store_config]) == 0
    said = capsys.readouterr().out.splitlines()
    new = said[-1]
    assert new != old and new.startswith("op-")
    assert said[0].startswith(f"rotated key 'ada' ({new[:11]}...)") and "(1h of grace)" in said[0]
    store = open_store(load_settings(store_config).store)
    try:
        assert store.find_key(new).rpm == 60 and store.find_key(old).name == "ada"
        assert main(["keys", "rotate", "ada", "--config", store_config]) == 0
        assert store.find_key(new) is None  # no grace: refused at once
        assert store.audit_trail()[-1].after["grace_seconds"] == 0
    finally:
        store.close()
    assert "its old secret no longer works" in capsys.readouterr().out


@pytest.mark.parametrize("args, status, message", [
    (["nobody"], 1, "no key named 'nobody'"),
    (["ada", "--grace", "soon"], 2, "--grace: not a duration (90s, 30m, 24h, 7d, 2w, or 0): 'soon'"),
])
def test_rotate_reports_mistakes(store_config, capsys, args, status, message):
    main(["keys", "create", "--name", "ada", "--config", store_config])
    with pytest.raises(SystemExit) if status == 2 else nullcontext():  # argparse exits with 2
        assert main(["keys", "rotate", *args, "--config", store_config]) == status
    assert message in capsys.readouterr().err
