"""Ollama Proxy: a gateway in front of Ollama servers."""

__version__ = "0.1.0"
