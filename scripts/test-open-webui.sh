#!/usr/bin/env bash
# Check Open WebUI against the real proxy: install it (a pinned version, into its own venv in a
# cache outside the repo), then run scripts/open_webui_check.py, which starts the fake Ollama, the
# proxy under gunicorn with a trusted front-end key, and Open WebUI on it, all on loopback, and
# chats through Open WebUI's own API. Kept out of scripts/test.sh: the install is about 3 GB.
#
#   scripts/test-open-webui.sh    # about 3 minutes and 2.9 GB the first time (pip's output goes
#                                 # to a log whose path it prints), half a minute later
set -euo pipefail
cd "$(dirname "$0")/.."

OPEN_WEBUI_VERSION=0.12.4
TORCH_VERSION=2.13.0  # installed first and pinned, so that the requirements of open-webui pick no other torch

cache="${XDG_CACHE_HOME:-$HOME/.cache}/ollama-proxy/open-webui-$OPEN_WEBUI_VERSION"
venv="$cache/venv"
log="$cache/pip.log"

say() { echo "test-open-webui: $*" >&2; }

installed() {
    [ -x "$venv/bin/open-webui" ] &&
        "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('open-webui') != '$OPEN_WEBUI_VERSION')" 2>/dev/null
}

if ! installed; then
    mkdir -p "$cache"
    say "installing open-webui==$OPEN_WEBUI_VERSION into $venv (pip's output: $log)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    {
        "$venv/bin/pip" install --upgrade pip
        "$venv/bin/pip" install "torch==$TORCH_VERSION"
        "$venv/bin/pip" install "open-webui==$OPEN_WEBUI_VERSION" "torch==$TORCH_VERSION"
    } >"$log" 2>&1 || { say "pip failed; see $log"; exit 1; }
    installed || { say "installed, but open-webui $OPEN_WEBUI_VERSION is not there; see $log"; exit 1; }
fi

if [ ! -x .venv/bin/python ]; then
    say "creating .venv (the proxy and its test extra)"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e '.[test]'
fi

exec .venv/bin/python scripts/open_webui_check.py --venv "$venv"
