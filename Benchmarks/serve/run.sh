#!/usr/bin/env bash
# Serving benchmark (issue 15): one run, wrk, a release pfc-server beside its peer measured in the same run.
#
#   1. GET /healthz and POST /echo (1 KiB JSON) on pfc-server with the access log ON (the default:
#      text lines, info level, to a file), then on Hummingbird 2 (Benchmarks/serve/hummingbird-peer,
#      built here from the package mirror into its own scratch folder; no request logging), one
#      server at a time, each after a warm-up; prints req/s, p50, p99 and the ratio pfc / Hummingbird
#      (target >= 1.0x), and healthz with --no-access-log for the log's cost. The servers alternate
#      (pfc and Hummingbird back to back, which goes first alternating by round, then pfc without
#      log; ROUNDS times); the table shows each side's best round and
#      the ratios per round and their median, so one burst of the machine's other load does not
#      decide it.
#   2. Authenticated GET /v1/models/{id} with 64 clients (target >= 15 000 req/s), access log on.
#   3. When Benchmarks/serve/predict.sh is executable: `predict.sh "$SERVER_BIN"`, its output as is.
#
# Usage: Benchmarks/serve/run.sh            (from anywhere)
# Env:   DURATION=10s THREADS=2 CONNECTIONS=64 PORT=18090 PEER_PORT=18290
#        SERVER_BIN=path/to/pfc-server (skip the build)   HB_BIN=path/to/hb-peer (skip the peer build)
#        ROUNDS=5 (rounds of the healthz/echo pairs)
# Needs: wrk, curl, python3; the Swift toolchain and the package mirror for the builds.
# The machine is shared: the load average is printed before and after; compare ratios within a run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
duration="${DURATION:-10s}"; threads="${THREADS:-2}"; conns="${CONNECTIONS:-64}"; rounds="${ROUNDS:-5}"
port="${PORT:-18090}"; peer_port="${PEER_PORT:-18290}"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

if [[ -z "${SERVER_BIN:-}" ]]; then
  (cd "$root" && swift build -c release --scratch-path .build-release --product pfc-server >&2)
  SERVER_BIN="$root/.build-release/release/pfc-server"
fi
if [[ -z "${HB_BIN:-}" ]]; then
  # Its own package and scratch folder: SwiftNIO never enters pfc-server's package graph.
  (cd "$here/hummingbird-peer" && swift build -c release --scratch-path "$root/.build-hb-peer" >&2)
  HB_BIN="$root/.build-hb-peer/release/hb-peer"
fi

# 1 KiB JSON body for /echo, and a wrk script that POSTs it.
python3 - "$work/body.json" <<'PY'
import json, sys
doc = {"id": "bench", "values": []}
while len(json.dumps(doc, separators=(",", ":"))) < 1000:
    doc["values"].append(len(doc["values"]))
s = json.dumps(doc, separators=(",", ":"))
s = s[:-1] + " " * (1024 - len(s)) + "}"
assert len(s) == 1024, len(s)
open(sys.argv[1], "w").write(s)
PY
cat > "$work/post.lua" <<LUA
local f = io.open("$work/body.json", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.headers["Content-Type"] = "application/json"
LUA

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else printf "%.3f", (v+0)*1000 }'; }
# run_wrk [wrk args…] → "rps p50_ms p99_ms"; wrk's full output goes to stderr.
run_wrk() {
  local out; out="$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@")"
  echo "$out" >&2
  echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out") $(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")") $(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")"
}
stop_last() { kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || { echo "server did not exit 0 on SIGTERM" >&2; exit 1; }; unset 'pids[-1]'; }

start_pfc() {  # start_pfc [serve flags…]
  "$SERVER_BIN" serve --host 127.0.0.1 --port "$port" --data-dir "$work/data" --echo --rate-limit 0 \
    --access-log-file "$work/access.log" "$@" >"$work/pfc.out" 2>>"$work/pfc.err" &
  pids+=($!); wait_port "$port"
}
start_hb() { "$HB_BIN" "$peer_port" >/dev/null 2>>"$work/hb.err" & pids+=($!); wait_port "$peer_port"; }

# bench NAME URL [wrk args…]: warm-up, then one measured run appended to $work/NAME.txt
bench() {
  local name="$1"; shift
  wrk -t"$threads" -c16 -d2s "${@:2}" "$1" >/dev/null
  echo "== $name ==" >&2
  run_wrk "${@:2}" "$1" >> "$work/$name.txt"
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load average before: $load_before" >&2
pfc_pair() {
  start_pfc
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null
  bench pfc_healthz "http://127.0.0.1:$port/healthz"
  bench pfc_echo "http://127.0.0.1:$port/echo" -s "$work/post.lua"
  stop_last
}
hb_pair() {
  start_hb
  curl -sf "http://127.0.0.1:$peer_port/healthz" >/dev/null
  bench hb_healthz "http://127.0.0.1:$peer_port/healthz"
  bench hb_echo "http://127.0.0.1:$peer_port/echo" -s "$work/post.lua"
  stop_last
}
for r in $(seq 1 "$rounds"); do
  # pfc and Hummingbird back to back, the first of the pair alternating between rounds, so that
  # neither side always runs in the same part of a round; the no-log run goes last.
  if (( r % 2 == 1 )); then pfc_pair; hb_pair; else hb_pair; pfc_pair; fi
  start_pfc --no-access-log
  bench pfc_nolog_healthz "http://127.0.0.1:$port/healthz"
  stop_last
done
log_lines="$(grep -c ' 200$' "$work/access.log" || true)"

# Authenticated GET /v1/models/{id}, 64 clients, access log on, SQLite (the default store).
start_pfc
key="$(cat "$work/data/default-api-key")"
model="$(curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"name":"bench","kind":"pfc","input_dim":64,"output_dim":10,"basis":30}' "http://127.0.0.1:$port/v1/models" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
curl -sf -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/models/$model"
bench pfc_model "http://127.0.0.1:$port/v1/models/$model" -H "Authorization: Bearer $key"
dropped="$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^http_access_log_dropped_total/ {s += $2} END {print s+0}')"
stop_last
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# best FILE → the line with the highest req/s
best() { sort -k1,1 -g -r "$work/$1.txt" | head -1; }
row() { read -r rps p50 p99 <<<"$(best "$3")"; printf '%-26s %-26s %12s %9s %9s\n' "$1" "$2" "$rps" "$p50" "$p99"; }
ratio() { awk -v a="$(best "$1" | cut -d' ' -f1)" -v b="$(best "$2" | cut -d' ' -f1)" 'BEGIN { printf "%.2fx", a/b }'; }

printf '\nwrk -t%s -c%s -d%s, %s cores, best of %s rounds; load average %s (before), %s (after)\n' \
  "$threads" "$conns" "$duration" "$(nproc)" "$rounds" "$load_before" "$load_after"
printf '%-26s %-26s %12s %9s %9s\n' route server "requests/s" "p50 ms" "p99 ms"
row "GET /healthz" "pfc-server, access log on" pfc_healthz
row "GET /healthz" "pfc-server, --no-access-log" pfc_nolog_healthz
row "GET /healthz" "Hummingbird 2, no log" hb_healthz
row "POST /echo (1 KiB)" "pfc-server, access log on" pfc_echo
row "POST /echo (1 KiB)" "Hummingbird 2, no log" hb_echo
row "GET /v1/models/{id} (auth)" "pfc-server, access log on" pfc_model
echo "every round (req/s): pfc healthz $(cut -d' ' -f1 "$work/pfc_healthz.txt" | paste -sd' '), hb healthz $(cut -d' ' -f1 "$work/hb_healthz.txt" | paste -sd' '), pfc echo $(cut -d' ' -f1 "$work/pfc_echo.txt" | paste -sd' '), hb echo $(cut -d' ' -f1 "$work/hb_echo.txt" | paste -sd' ')"
echo "ratio pfc-server (access log on) / Hummingbird 2, best round of each: healthz $(ratio pfc_healthz hb_healthz), echo $(ratio pfc_echo hb_echo) (target >= 1.0x)"
# Per round: the two servers ran back to back, so these pairs shared the machine's load most closely.
paste -d' ' <(cut -d' ' -f1 "$work/pfc_healthz.txt") <(cut -d' ' -f1 "$work/hb_healthz.txt") <(cut -d' ' -f1 "$work/pfc_echo.txt") <(cut -d' ' -f1 "$work/hb_echo.txt") \
  | awk '{ printf "%.2f %.2f\n", $1/$2, $3/$4 }' > "$work/ratios.txt"
awk '{ printf "round %d: healthz %sx, echo %sx\n", NR, $1, $2 }' "$work/ratios.txt"
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median of the rounds: healthz $(cut -d' ' -f1 "$work/ratios.txt" | median)x, echo $(cut -d' ' -f2 "$work/ratios.txt" | median)x"
awk -v a="$(best pfc_healthz | cut -d' ' -f1)" -v b="$(best pfc_nolog_healthz | cut -d' ' -f1)" 'BEGIN { printf "access log on / off (healthz, best rounds): %.2fx\n", a/b }'
awk -v a="$(best pfc_model | cut -d' ' -f1)" 'BEGIN { printf "authenticated GET /v1/models/{id}, 64 clients: %.0f req/s (target >= 15000)\n", a }'
echo "access-log lines written (healthz and echo rounds): $log_lines; dropped at the end of the model run: $dropped"

if [[ -x "$here/predict.sh" ]]; then
  echo
  echo "== Benchmarks/serve/predict.sh =="
  "$here/predict.sh" "$SERVER_BIN"
fi
