#!/usr/bin/env bash
# Prepare a fresh Debian 12 / Raspberry Pi OS machine: mosquitto (and, with --test,
# nats-server), a virtualenv in .venv, and edge-agent installed into it (editable).
# Safe to run again.
# Usage: scripts/setup.sh [--test]     (--test also installs the test tools and labgrid)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# the MQTT 3.1.1 tests also run against the NATS server's MQTT listener
if [ "${1:-}" = "--test" ]; then
    command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] \
        || need_apt+=(nats-server)
fi
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${need_apt[*]} with apt-get" >&2
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
extra=""
# the test tools, and labgrid for the rig suite (hil/tests: its sim rig runs in CI)
[ "${1:-}" = "--test" ] && extra="[test,hil]"
.venv/bin/python -m pip install -q -e ".${extra}"
