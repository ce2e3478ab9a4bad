"""The fake Ollama's routes that concern ollama.com, as Ollama's server/routes.go shapes them."""

import pytest
import requests


def test_status_says_the_cloud_is_on(fake):
    answer = requests.get(fake.url + "/api/status", timeout=10)
    assert answer.status_code == 200 and answer.json() == {"cloud": {"disabled": False, "source": "none"}}


def test_recommendations_are_models_with_descriptions(fake):
    recommended = requests.get(fake.url + "/api/experimental/model-recommendations", timeout=10).json()
    assert recommended["recommendations"] and all({"model", "description"} <= set(r)
                                                  for r in recommended["recommendations"])


def test_web_search_answers_results_for_the_query(fake):
    answer = requests.post(fake.url + "/api/experimental/web_search", json={"query": "ollama", "max_results": 2},
                           timeout=10)
    assert answer.status_code == 200
    assert [set(r) for r in answer.json()["results"]] == [{"title", "url", "content"}] * 2
    assert fake.web_calls == [("search", {"query": "ollama", "max_results": 2})]


def test_web_fetch_answers_the_page(fake):
    answer = requests.post(fake.url + "/api/experimental/web_fetch", json={"url": "https://ollama.com"}, timeout=10)
    assert answer.status_code == 200 and set(answer.json()) == {"title", "content", "links"}
    assert fake.web_calls == [("fetch", {"url": "https://ollama.com"})]


@pytest.mark.parametrize("path, body, message", [
    ("/api/experimental/web_search", b"", "missing request body"),  # Ollama's own check
    ("/api/experimental/web_search", b"  ", "missing request body"),
    ("/api/experimental/web_search", b'{"max_results": 2}', "query is required"),
    ("/api/experimental/web_search", b'{"query": "x", "max_results": 99}', "max_results must be between 1 and 10"),
    ("/api/experimental/web_fetch", b'{"url": "ftp://x"}', "url is required"),
    ("/api/experimental/web_fetch", b"[1]", "invalid request body"),
])
def test_web_calls_that_make_no_sense_are_400s(fake, path, body, message):
    answer = requests.post(fake.url + path, data=body, timeout=10)
    assert answer.status_code == 400 and answer.json() == {"error": message}
    assert fake.web_calls == []


def test_the_account_is_signed_out_until_a_test_signs_it_in(fake):
    me = requests.post(fake.url + "/api/me", timeout=10)
    assert me.status_code == 401 and me.json()["error"] == "unauthorized" and me.json()["signin_url"]
    assert requests.post(fake.url + "/api/signout", timeout=10).json() == {"error": "you are not currently signed in"}
    fake.account = {"name": "ann", "email": "ann@example.com"}
    assert requests.post(fake.url + "/api/me", timeout=10).json() == {"plan": "free", "name": "ann",
                                                                       "email": "ann@example.com"}
    signout = requests.post(fake.url + "/api/signout", timeout=10)
    assert signout.status_code == 200 and signout.json() is None and fake.account is None


def test_the_older_signout_route_signs_out_too(fake):
    fake.account = {"name": "ann"}
    assert requests.delete(fake.url + "/api/user/keys/ZmFrZQ", timeout=10).status_code == 200
    assert fake.account is None


def test_a_reset_signs_out_and_forgets_web_calls(fake):
    fake.account = {"name": "ann"}
    requests.post(fake.url + "/api/experimental/web_search", json={"query": "x"}, timeout=10)
    fake.reset()
    assert fake.account is None and fake.web_calls == []
