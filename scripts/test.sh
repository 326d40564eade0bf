#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a throwaway PostgreSQL on a free local
# port (scripts/with-postgres.sh), and runs scripts/run-suite.sh under it: `swift test` (both
# stores), the two-replica test, the deploy-file checks and schemathesis.
#   scripts/test.sh [swift test arguments…]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The dashboard stage drives headless Chromium through chromedriver (Debian packages; selenium comes from PyPI).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >&2
fi
python3 -c 'import selenium' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check selenium >&2 \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages selenium >&2
exec scripts/with-postgres.sh scripts/run-suite.sh "$@"
