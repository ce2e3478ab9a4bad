"""Who the tests' changes to the store are made by, for its audit trail."""

from ollama_proxy.store import Actor

TESTER = Actor("tester", "cli", "tests")
