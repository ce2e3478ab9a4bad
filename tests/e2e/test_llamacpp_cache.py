"""The real llama-server, run as Ollama 0.33 runs it, reads from its cache as tests/llama_server_cases.py says.

The same table holds the fake Ollama (tests/unit/fakes/test_ollama_cache.py) and the proxy's mirror
(tests/unit/scheduler/decisions/test_caches.py): what they assume of llama-server's slot choice and RAM prompt
cache is what the real one does. Each case starts a fresh server: nothing cached.
"""

from __future__ import annotations

import re

import requests

from tests.e2e.ollama_on_llama import MODEL, OllamaOnLlama
from tests.e2e.server import wait_for
from tests.llama_server_cases import SLOTS, expected, messages, parametrized, reads

LAUNCHED = re.compile(r"launch_slot_: id +(\d+) \|")  # llama-server's log line as a slot takes a task


@parametrized
def test_llama_server_reads_from_cache_as_the_table_says(case, tmp_path):
    with OllamaOnLlama(tmp_path, num_parallel=SLOTS, threads=2, reports_cached=True) as server:  # cache_n said
        last, found = {}, []
        for step in case.steps:
            answer = requests.post(server.url + "/api/chat", timeout=120, json={
                "model": MODEL, "messages": messages(case, step), "stream": False, "options": {"num_predict": 4}})
            answer.raise_for_status()
            done = answer.json()
            found.append((reads(done["prompt_eval_cached_count"], done["prompt_eval_count"], last.get(step.who)),
                          _last_slot(server.log_path.read_text(errors="replace"))))
            last[step.who] = done["prompt_eval_count"]
            assert wait_for(lambda: not any(slot["is_processing"] for slot in server.slots()), timeout=10)
    assert found == expected(case), server.log_path.read_text(errors="replace")[-3000:]


def _last_slot(log: str) -> int:
    """The slot llama-server gave the latest task, by its number."""
    return int(LAUNCHED.findall(log)[-1])
