"""Benchmarks of the proxy against a fast fake Ollama: ``python -m bench.run [--quick]``."""
