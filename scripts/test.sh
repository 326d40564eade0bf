#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a throwaway PostgreSQL on a free local
# port (scripts/with-postgres.sh), and runs `swift test` against it and the embedded SQLite store.
#   scripts/test.sh [swift test arguments…]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec scripts/with-postgres.sh swift test "$@"
