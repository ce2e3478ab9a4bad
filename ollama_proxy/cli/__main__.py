"""``python -m ollama_proxy.cli``: the ``ollama-proxy`` command."""

from ollama_proxy.cli import main

raise SystemExit(main())
