#!/usr/bin/env bash
# Install a Go toolchain for the tests that read multipart forms with real Go (tests/go_reader.py
# builds tests/go/formvalue, standard library only, so nothing is downloaded but the toolchain).
# Idempotent: with `go` already there it only checks and exits. Without it, Debian's golang-go
# is installed as root with apt-get; otherwise it says why and exits 0: the tests then fail with a
# message naming this script.
set -euo pipefail

if command -v go >/dev/null 2>&1 || [ -x /usr/lib/go/bin/go ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-go: no go here (and not root with apt-get): not installing" >&2
    exit 0
fi
echo "install-go: installing golang-go" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends golang-go >/dev/null
