#!/usr/bin/env bash
# Dashboard benchmark (issue 18): a release pfc-server on the embedded SQLite default with training jobs
# running (digits, PFC K 300, N 100; --jobs of them, one worker each at --threads 1, default 1); ten
# dashboards open on their model pages in real headless Chromium (tabs, 3 per browser process: a browser
# opens at most 6 HTTP/1.1 connections per origin and each page holds its job's event stream, read with
# fetch(), and polls the job list every 3 s) while wrk measures an unrelated authenticated GET
# /v1/models/{id} with 16 connections. Prints p50/p99 with training alone and with the dashboards too
# (target p99 < 50 ms), the load average, and whether every tab's live curve grew. Exits non-zero when a
# check fails.
#
# With --followers python each dashboard is replaced by what its page does (the event stream and the 3 s
# job-list poll) from Python threads, so the browsers' own CPU does not share the 2 cores with the server.
#
# Usage: Benchmarks/ui/run.sh [--bin PATH] [--tabs 10] [--jobs 1] [--followers browser|python]
# Env:   PORT=18380 DURATION=20s
# Needs: wrk, python3, chromium + chromium-driver (apt), selenium (pip).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin=""; tabs=10; jobs=1; followers=browser
while [ $# -gt 0 ]; do case "$1" in
  --bin) bin="$2"; shift 2 ;; --tabs) tabs="$2"; shift 2 ;; --jobs) jobs="$2"; shift 2 ;; --followers) followers="$2"; shift 2 ;;
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
  --workers "$jobs" --threads 1 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
key="$(cat "$work/default-api-key")"
echo "# Dashboards vs. the API: $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "pfc-server release build ($(git -C "$root" rev-parse --short HEAD)), SQLite, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), 16 handler threads, $jobs training worker(s) at --threads 1."
echo "Load average at the start (other work on the machine counts): $(cut -d' ' -f1-3 /proc/loadavg)."
echo
SE_AVOID_STATS=true SE_OFFLINE=true python3 "$here/ui_bench.py" --port "$port" --key "$key" --pid "$server" --tabs "$tabs" --jobs "$jobs" --followers "$followers" \
  --duration "${DURATION:-20s}" --csv "$root/Tests/PFCTests/Fixtures/digits_train.csv"
