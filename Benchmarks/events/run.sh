#!/usr/bin/env bash
# Event-stream benchmark (issue 13): a release pfc-server on the embedded SQLite default; 200 event
# streams on one running training job (digits, K 300, N 100) and 50 on 10 other (queued) jobs, while
# wrk measures an unrelated authenticated GET /v1/models/{id} with 16 connections. Prints p50/p99
# (target p99 < 50 ms), whether every stream got every progress event in order, and the server's
# thread count (/proc/PID/status) before and during the streams. Exits non-zero when a check fails.
#
# With --task: then a streamed task of the 60,000 MNIST training examples (NDJSON, ../shared/data/mnist)
# while wrk measures the same GET (Benchmarks/events/task_stream_bench.py); --task-only skips the streams.
#
# Usage: Benchmarks/events/run.sh [--bin PATH] [--task|--task-only]
# Env:   PORT=18280 DURATION=20s EPOCHS=30 MNIST=dir THREADS=n (the server's --threads; default all cores)
# Needs: wrk, python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin=""; task=0; streams=1
while [ $# -gt 0 ]; do case "$1" in
  --bin) bin="$2"; shift 2 ;; --task) task=1; shift ;; --task-only) task=1; streams=0; shift ;;
  *) echo "unknown argument $1" >&2; exit 2 ;; esac; done
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
if [ -z "$bin" ]; then
  (cd "$root" && swift build -c release --scratch-path .build-release --product pfc-server >&2)
  bin="$root/.build-release/release/pfc-server"
fi
port="${PORT:-18280}"
work="$(mktemp -d)"; server=""
cleanup() { [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin" serve --port "$port" --data-dir "$work" --no-access-log --log-level warning --rate-limit 0 --quota-jobs 0 \
  --max-connections 2048 --max-connections-per-address 2048 ${THREADS:+--threads "$THREADS"} >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
key="$(cat "$work/default-api-key")"
ds="$(curl -fs -H "Authorization: Bearer $key" -H 'Content-Type: text/csv' \
      --data-binary @"$root/Tests/PFCTests/Fixtures/digits_train.csv" "http://127.0.0.1:$port/v1/datasets?name=digits&image_shape=8,8" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
echo "# Event streams vs. the API: $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "pfc-server release build ($(git -C "$root" rev-parse --short HEAD)), SQLite, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), 16 handler threads, 1 training worker."
echo "Main job: digits (1438 rows), PFC K 300, N 100, ${EPOCHS:-30} epochs; heartbeat (progress written) every 1 s."
echo "Load average at the start (other work on the machine counts): $(cut -d' ' -f1-3 /proc/loadavg)."
echo
rc=0
if [ "$streams" = 1 ]; then
  python3 "$here/events_bench.py" --port "$port" --key "$key" --pid "$server" --dataset "$ds" \
    --epochs "${EPOCHS:-30}" --duration "${DURATION:-20s}" || rc=$?
fi
if [ "$task" = 1 ]; then
  echo
  echo "## Streamed task: 60,000 MNIST examples while 16 clients call another route"
  echo
  python3 "$here/task_stream_bench.py" --port "$port" --key "$key" --pid "$server" --mnist "${MNIST:-$root/../shared/data/mnist}" || rc=$?
fi
exit "$rc"
