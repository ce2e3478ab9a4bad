import os

import pytest

from ollama_proxy.backends.session import ProcessSession, reason


@pytest.mark.parametrize("text, cause", [
    ("HTTPConnectionPool(host='x', port=1): Max retries exceeded (Caused by NewConnectionError("
     "'<urllib3.connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: "
     "[Errno 111] Connection refused'))", "connection refused"),
    ("... [Errno -2] Name or service not known", "name or service not known"),
    ("something else entirely", "something else entirely"),
])
def test_reason_names_the_cause_in_a_few_words(text, cause):
    assert reason(Exception(text)) == cause


def test_one_session_per_process():
    sessions = ProcessSession(pool_size=7)
    first = sessions.get()
    assert sessions.get() is first and first.trust_env is False
    assert first.get_adapter("https://x")._pool_maxsize == 7
    sessions._pid = os.getpid() + 1  # as a forked worker sees it
    assert sessions.get() is not first
