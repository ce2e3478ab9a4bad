#!/usr/bin/env bash
# Install the Debian packages that the tests run: nginx (the deploy site in front of the real
# server), systemd (`systemd-analyze verify` on the unit file), logrotate (deploy/logrotate run
# on the server's logs), postgresql (a throwaway cluster for the store's tests), chromium (the
# admin page's browser tests drive Debian's chromium through Playwright) and redis-server (rate
# limits shared by two proxy instances); git, curl and Debian's python3 with venv for the VM
# rehearsal, which runs INSTALL.md.
# Idempotent: when every command is already there it only checks and exits; `apt-get update`
# runs only when a package is missing. Without root or apt-get it does nothing, says why,
# and exits 0: the tests then fail with a message naming what is missing.
set -euo pipefail

# command the tests run -> the Debian package that ships it
declare -A PACKAGE_OF=([nginx]=nginx [systemd-analyze]=systemd [logrotate]=logrotate
                       [initdb]=postgresql [pg_ctl]=postgresql [runuser]=util-linux [chromium]=chromium
                       [redis-server]=redis-server [git]=git [curl]=curl [/usr/bin/python3]=python3)

# nginx and systemd-analyze live in sbin directories that a non-login PATH may lack; Debian
# keeps initdb and pg_ctl under /usr/lib/postgresql/<version>/bin.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
for bin in /usr/lib/postgresql/*/bin; do
    [ -d "$bin" ] && PATH="$PATH:$bin"
done

missing=()
for command in "${!PACKAGE_OF[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$command]}")
done
# The VM rehearsal (tests/e2e/test_vm_rehearsal.py) makes a virtualenv with Debian's python3, as INSTALL.md does.
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-services: not root, not installing: ${missing[*]}" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-services: no apt-get here, not installing: ${missing[*]}" >&2
    exit 0
fi

# The tests start their own nginx on free ports: keep the package's post-install script from
# starting the system one on port 80 (policy-rc.d exit 101 = "action forbidden"). Only a
# policy file this script created is removed again.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

echo "install-test-services: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# initdb and pg_ctl come from one package: name it once.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
