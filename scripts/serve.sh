#!/usr/bin/env bash
# Install Ollama Proxy into .venv (first run only) and serve it on the default config.
# Arguments go to `ollama-proxy serve`, e.g.: scripts/serve.sh --bind 0.0.0.0:8080
# A relative --config path is read from where you stand, not from the project root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/ollama-proxy" ]; then
    python3 -m venv "$root/.venv"
    "$root/.venv/bin/pip" install --quiet --upgrade pip
    (cd "$root" && .venv/bin/pip install --quiet -e .)
fi
exec "$root/.venv/bin/ollama-proxy" serve "$@"
