#!/usr/bin/env bash
# Install Claude Code (the npm package @anthropic-ai/claude-code, at a pinned version) for the
# real-client tests (tests/e2e/test_claude_code.py), which run its CLI against the real server.
#
# It comes from the npm registry, through npm: the package's platform dependency holds the native
# `claude` binary, which its install script links in place of a stub. Everything is cached outside
# the repo, in the directory `--dir` prints; a cached CLI that runs and says its version is not
# installed again.
#
#   scripts/install-claude-code.sh          # install (about 10 seconds, 360 MB, the first time)
#   scripts/install-claude-code.sh --dir    # print the cache directory and exit
#
# Node.js and npm are installed with apt-get when missing and run as root.
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.330
PACKAGE=@anthropic-ai/claude-code

cache="${XDG_CACHE_HOME:-$HOME/.cache}/ollama-proxy/claude-code-$CLAUDE_CODE_VERSION"
if [ "${1:-}" = "--dir" ]; then
    echo "$cache"
    exit 0
fi
claude="$cache/node_modules/.bin/claude"

say() { echo "install-claude-code: $*" >&2; }

runs() { "$claude" --version 2>/dev/null | grep -q "^$CLAUDE_CODE_VERSION "; }

install_npm() {
    command -v npm >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "cannot install Claude Code: npm is missing (install Node.js and npm, or run as root on Debian)"
        exit 1
    fi
    say "installing nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
}

if runs; then
    exit 0
fi
install_npm
mkdir -p "$cache"
say "installing $PACKAGE@$CLAUDE_CODE_VERSION into $cache"
# The package asks for a newer Node.js than Debian's: the binary it installs is native, and Node
# only runs its install script, so npm's engine warning is kept out of the output.
npm install --prefix "$cache" --no-save --no-audit --no-fund --loglevel=error \
    "$PACKAGE@$CLAUDE_CODE_VERSION" >&2
if ! runs; then
    # An npm that skipped the install script leaves the stub in place: run the script itself.
    (cd "$cache/node_modules/$PACKAGE" && node install.cjs) >&2
fi
if ! runs; then
    say "$claude does not run; see the npm output above"
    exit 1
fi
