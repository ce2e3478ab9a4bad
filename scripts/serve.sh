#!/usr/bin/env bash
# Install Ollama Proxy into .venv (first run only) and serve it on the default config.
# Arguments go to `ollama-proxy serve`, e.g.: scripts/serve.sh --bind 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/ollama-proxy ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e .
fi
exec .venv/bin/ollama-proxy serve "$@"
