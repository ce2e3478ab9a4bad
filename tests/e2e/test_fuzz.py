"""Fuzz every operation in the proxy's OpenAPI description against the real server.

schemathesis generates requests from the description, valid and invalid, and
checks every answer of the real server (gunicorn in front of the fake Ollama):
no 5xx, no traceback, a documented status and content type, and a body that
matches its schema where the description gives one. A body the description
allows may still be refused (400): the request schemas check the skeleton and
the translators the rest, so schemathesis' "valid data is accepted" check is
left out; each operation's example body is sent first and must succeed. The examples per
operation are bounded so the whole run stays short; tests/e2e/test_hostile.py
covers malformed bytes, sizes and leaks.

The description is built in this process, from the same app the server runs,
so the operations are known when pytest collects them; a test checks that the
server serves the very same document.
"""

from __future__ import annotations

import tempfile

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from ollama_proxy.app import create_app
from ollama_proxy.config import parse_settings
from ollama_proxy.openapi import build_spec
from tests.e2e.conftest import MANAGE, auth

EXAMPLES = 8  # per operation: about 30 operations, about two minutes on a loaded machine
TIMEOUT = 10  # seconds: a hang fails the example


def _description() -> dict:
    log_dir = tempfile.mkdtemp(prefix="ollama-proxy-openapi-")
    return build_spec(create_app(parse_settings({"logging": {"dir": log_dir}}, environ={})))


DESCRIPTION = _description()
# Under pytest-xdist schemathesis' operations are silently not run (39 of this module's 59 tests): one at a time.
pytestmark = pytest.mark.alone

schema = schemathesis.openapi.from_dict(DESCRIPTION)


def test_the_server_serves_this_description(proxy):
    answer = requests.get(proxy.url + "/openapi.json", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.json() == DESCRIPTION


EXAMPLES_GIVEN = [(path, method, operation["requestBody"]["content"]["application/json"]["example"])
                  for path, item in DESCRIPTION["paths"].items() for method, operation in item.items()
                  if method != "parameters" and "example" in operation.get("requestBody", {}).get(
                      "content", {}).get("application/json", {})]


@pytest.mark.parametrize("path, method, body", EXAMPLES_GIVEN, ids=[f"{m.upper()} {p}" for p, m, _ in EXAMPLES_GIVEN])
def test_every_example_body_is_answered(proxy, fake, path, method, body):
    if path == "/api/delete":  # delete the copy the /api/copy example makes
        copy = DESCRIPTION["paths"]["/api/copy"]["post"]["requestBody"]["content"]["application/json"]["example"]
        requests.post(proxy.url + "/api/copy", json=copy, headers=auth(MANAGE), timeout=TIMEOUT).raise_for_status()
    answer = requests.request(method, proxy.url + path, json=body, headers=auth(MANAGE), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text[:300]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_operation_answers_as_described(case, proxy, fake):
    answer = case.call_and_validate(base_url=proxy.url, headers=auth(MANAGE), timeout=TIMEOUT,
                                    excluded_checks=[positive_data_acceptance])
    assert "Traceback" not in answer.text
