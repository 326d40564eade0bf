#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a throwaway PostgreSQL on a free local
# port (scripts/with-postgres.sh), and runs scripts/run-suite.sh under it: `swift test` (both
# stores), the two-replica test, the deploy-file checks and schemathesis.
#   scripts/test.sh [swift test arguments…]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec scripts/with-postgres.sh scripts/run-suite.sh "$@"
