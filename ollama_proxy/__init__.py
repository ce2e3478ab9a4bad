"""Ollama Proxy: a gateway in front of Ollama servers."""

from importlib.metadata import PackageNotFoundError, version

try:
    # setup.cfg holds the number; `pip install -e .` (INSTALL.md's upgrade line) writes it to the metadata.
    __version__ = version("ollama-proxy")
except PackageNotFoundError:  # run from a checkout never installed
    __version__ = "0+unknown"
