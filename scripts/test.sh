#!/usr/bin/env bash
# Install Ollama Proxy and everything its tests need into .venv, then run the whole suite.
# Arguments go to pytest, e.g.: scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-services.sh  # nginx, systemd-analyze, logrotate for the deploy tests
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
# llama-server and a tiny model for tests/e2e/test_llamacpp.py (built once, then cached)
PYTHON=.venv/bin/python bash scripts/install-llama-server.sh
exec .venv/bin/python -m pytest "$@"
