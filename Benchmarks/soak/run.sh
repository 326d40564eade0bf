#!/usr/bin/env bash
# Soak: two pfc-server replicas on one throwaway PostgreSQL, 20 minutes (default) of bounded mixed
# traffic, a kill -9 of a replica every few minutes (alternating, restarted with the same flags),
# one PostgreSQL restart, then checks: requests by status and p50/p99 per route; jobs submitted,
# succeeded, failed, run twice (must be 0), lost (must be 0); every model version's checksum;
# resident memory of each replica over time. Writes Benchmarks/soak/results-<date>.md.
#
# Usage: Benchmarks/soak/run.sh [--bin PATH] [--minutes N] [other soak.py options, see --help]
#   --bin PATH   a release pfc-server binary; without it: swift build -c release --product pfc-server
# Needs: python3 (standard library only; nothing to pip install), psql, initdb/pg_ctl (postgresql),
# the build toolchain when no --bin is given. Exit status: 0 pass, 1 a check failed, 2 set-up error.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=""
args=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --bin=*) bin="${1#--bin=}"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; python3 Benchmarks/soak/soak.py --help; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -z "$bin" ]; then
    swift build -c release --product pfc-server >&2
    bin="$(swift build -c release --show-bin-path)/pfc-server"
fi
[ -x "$bin" ] || { echo "run.sh: no executable at $bin" >&2; exit 2; }
command -v psql >/dev/null || { echo "run.sh: psql not found (apt-get install -y postgresql-client)" >&2; exit 2; }

exec scripts/with-postgres.sh python3 Benchmarks/soak/soak.py --bin "$bin" ${args[@]+"${args[@]}"}
