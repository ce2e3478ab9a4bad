#!/usr/bin/env bash
# Install OpenAI's Codex CLI (@openai/codex, a native binary shipped in an npm package) at a
# pinned version, for the real-client tests (tests/e2e/test_codex.py).
#
# It comes from the npm registry through npm itself, into a cache outside the repo, in the
# directory `--dir` prints; an installed CLI that runs is not installed again. No install
# scripts run: the package's launcher and its platform binary are all it needs.
#
#   scripts/install-codex.sh          # install (about 15 seconds and 400 MB the first time)
#   scripts/install-codex.sh --dir    # print the install directory and exit
set -euo pipefail

CODEX_VERSION=0.169.0

cache="${XDG_CACHE_HOME:-$HOME/.cache}/ollama-proxy/codex-$CODEX_VERSION"
if [ "${1:-}" = "--dir" ]; then
    echo "$cache"
    exit 0
fi
codex="$cache/node_modules/.bin/codex"

say() { echo "install-codex: $*" >&2; }

codex_runs() { [ -x "$codex" ] && "$codex" --version 2>/dev/null | grep -qF "$CODEX_VERSION"; }

if codex_runs; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    say "cannot install @openai/codex@$CODEX_VERSION: npm is missing (install Node.js 18 or later)"
    exit 1
fi
say "installing @openai/codex@$CODEX_VERSION into $cache"
mkdir -p "$cache"
npm install --prefix "$cache" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
    "@openai/codex@$CODEX_VERSION" >&2
if ! codex_runs; then
    say "installed, but $codex --version does not run here"
    exit 1
fi
