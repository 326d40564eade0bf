#!/usr/bin/env bash
# Installs the system packages pfc-server builds and tests against (Debian 12). Needs root (or sudo)
# only when something is missing. Swift 6 itself must already be on PATH.
set -euo pipefail
packages=(pkg-config libopenblas-dev libpq-dev libssl-dev libsqlite3-dev postgresql)
# Tools the tests run (not needed to build or serve): the TLS tests' certificates and clients.
test_tools=(openssl curl python3)
missing=()
for p in "${packages[@]}" "${test_tools[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (install a Swift 6 toolchain)" >&2; exit 2; }
