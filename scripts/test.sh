#!/usr/bin/env bash
# Install Ollama Proxy and everything its tests need into .venv, then run the whole suite.
# Arguments go to pytest, e.g.: scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-services.sh  # nginx, systemd-analyze, logrotate for the deploy tests
bash scripts/install-js-clients.sh     # the JavaScript clients of tests/e2e/test_js_*.py (npm ci)
bash scripts/install-go.sh             # Go, which reads multipart forms as Ollama does (tests/go_reader.py)
[ -x .venv/bin/python ] || python3 -m venv .venv
# Installed again only when what it installs changed (setup.cfg, pyproject.toml): the code itself is editable.
stamp=".venv/.installed-test-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e '.[test,dev]'  # dev: ruff, for scripts/check
    rm -f .venv/.installed-test-*
    touch "$stamp"
fi
# Go's reader of multipart forms, which the fake Ollama's audio route reads with (built once per version of its
# source): built here, as a first build inside a test's request can outlast the client's timeout.
.venv/bin/python -m tests.go_reader
# llama-server and a tiny model for tests/e2e/test_llamacpp.py (built once, then cached)
PYTHON=.venv/bin/python bash scripts/install-llama-server.sh
# the Codex CLI for tests/e2e/test_codex.py, from npm at a pinned version (installed once, then cached)
bash scripts/install-codex.sh
# Claude Code's CLI, pinned, for tests/e2e/test_claude_code.py (installed once from npm, then cached)
bash scripts/install-claude-code.sh
# The slowest twenty are named at the end, so that a run that grows says where.
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest --durations=20 "$@"
fi
# The whole suite: test files side by side (pytest-xdist, a file's tests together so that its fixtures start
# once; one process more than the cores, as the end-to-end tests spend a third of their time waiting on
# sockets; the slowest files first, tests/file_order.py), then, one at a time, the tests marked `alone`: a
# timing bound another test beside it would stretch, a tool xdist stops, or a read of the whole run's logs.
# Both sessions keep their files under one directory, whose every log the last test reads for secrets.
OLLAMA_PROXY_TEST_LOGS=$(mktemp -d "${TMPDIR:-/tmp}/ollama-proxy-tests-XXXXXX")
export OLLAMA_PROXY_TEST_LOGS
status=0
.venv/bin/python -m pytest --durations=20 -n "$(($(nproc) + 1))" --dist loadfile --no-loadscope-reorder \
    -m "not alone" --basetemp "$OLLAMA_PROXY_TEST_LOGS/together" || status=$?
.venv/bin/python -m pytest --durations=20 -m alone --basetemp "$OLLAMA_PROXY_TEST_LOGS/alone" \
    || status=$((status ? status : $?))
[ "$status" -ne 0 ] || rm -rf "$OLLAMA_PROXY_TEST_LOGS"  # kept when a test failed, to be read
exit "$status"
