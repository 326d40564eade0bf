#!/usr/bin/env bash
# Dashboard benchmark (issue 18): a release pfc-server on the embedded SQLite default with two training
# jobs running (digits, PFC K 300, N 100, 2 workers); ten dashboards open on their model pages in real
# headless Chromium (one browser, ten tabs: each page follows its job's event stream with fetch() and polls
# the job list every 3 s) while wrk measures an unrelated authenticated GET /v1/models/{id} with 16
# connections. Prints p50/p99 without and with the dashboards (target p99 < 50 ms), the load average,
# and whether every tab's live curve grew. Exits non-zero when a check fails.
#
# Usage: Benchmarks/ui/run.sh [--bin PATH] [--tabs 10]
# Env:   PORT=18380 DURATION=20s
# Needs: wrk, python3, chromium + chromium-driver (apt), selenium (pip).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin=""; tabs=10
while [ $# -gt 0 ]; do case "$1" in
  --bin) bin="$2"; shift 2 ;; --tabs) tabs="$2"; shift 2 ;;
  *) echo "unknown argument $1" >&2; exit 2 ;; esac; done
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
if [ -z "$bin" ]; then
  (cd "$root" && swift build -c release --scratch-path .build-release --product pfc-server >&2)
  bin="$root/.build-release/release/pfc-server"
fi
port="${PORT:-18380}"
work="$(mktemp -d)"; server=""
cleanup() { [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin" serve --port "$port" --data-dir "$work" --no-access-log --log-level warning --rate-limit 0 --quota-jobs 0 \
  --workers 2 --threads 1 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
key="$(cat "$work/default-api-key")"
echo "# Dashboards vs. the API: $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "pfc-server release build ($(git -C "$root" rev-parse --short HEAD)), SQLite, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), 16 handler threads, 2 training workers at --threads 1."
echo "Load average at the start (other work on the machine counts): $(cut -d' ' -f1-3 /proc/loadavg)."
echo
SE_AVOID_STATS=true SE_OFFLINE=true python3 "$here/ui_bench.py" --port "$port" --key "$key" --pid "$server" --tabs "$tabs" \
  --duration "${DURATION:-20s}" --csv "$root/Tests/PFCTests/Fixtures/digits_train.csv"
