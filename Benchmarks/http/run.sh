#!/usr/bin/env bash
# HTTP benchmark: wrk -t2 -c64 -d10s against a release `pfc-server serve --echo` and against a
# FastAPI + uvicorn peer (2 workers) on the same machine, in the same run: GET /healthz and
# POST /echo with a 1 KiB JSON body. Prints requests/s and p50/p99 for both, and the ratio.
# Then GET /healthz over HTTP and over HTTPS (--tls-cert/--tls-key, a self-signed P-256 certificate
# made here with the openssl CLI), both with the access log on as in production, and their ratio.
#
# Usage: Benchmarks/http/run.sh            (from the repository root or anywhere)
# Env:   DURATION=10s CONNECTIONS=64 THREADS=2 SWIFT_PORT=18080 PEER_PORT=18180 TLS_PORT=18443
#        PEER=0  (skip the FastAPI peer: only the Swift and the HTTP-vs-HTTPS figures)
#        SERVER_BIN=path/to/pfc-server  (skip the build and use this binary)
#        PEER_PYTHON=python3  (e.g. Benchmarks/.venv/bin/python with uvicorn[standard]: uvloop + httptools)
# Needs: wrk and openssl (apt), python3 with fastapi and uvicorn (pip install fastapi uvicorn).
# Both servers run with access logs off; the peer is uvicorn's default install (no uvloop/httptools
# unless they happen to be installed; the script prints which loop and parser it got).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
duration="${DURATION:-10s}"; conns="${CONNECTIONS:-64}"; threads="${THREADS:-2}"
swift_port="${SWIFT_PORT:-18080}"; peer_port="${PEER_PORT:-18180}"; tls_port="${TLS_PORT:-18443}"; with_peer="${PEER:-1}"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl not found: apt-get install openssl" >&2; exit 1; }
peer_python="${PEER_PYTHON:-python3}"
if [[ "$with_peer" != 0 ]]; then
  "$peer_python" -c "import fastapi, uvicorn" 2>/dev/null || "$peer_python" -m pip install --quiet fastapi uvicorn
fi

if [[ -z "${SERVER_BIN:-}" ]]; then
  (cd "$root" && swift build -c release --scratch-path .build-http-release --product pfc-server >&2)
  SERVER_BIN="$root/.build-http-release/release/pfc-server"
fi

# 1 KiB JSON body for /echo, and a wrk script that POSTs it.
python3 - "$work/body.json" <<'PY'
import json, sys
doc = {"id": "bench", "values": []}
while len(json.dumps(doc, separators=(",", ":"))) < 1024 - 8:
    doc["values"].append(len(doc["values"]))
s = json.dumps(doc, separators=(",", ":"))
s = s[:-2] + "]" + " " * (1024 - len(s) - 1) + "}" if len(s) < 1024 else s
open(sys.argv[1], "w").write(s[:1024] if len(s) > 1024 else s)
PY
cat > "$work/post.lua" <<LUA
local f = io.open("$work/body.json", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.headers["Content-Type"] = "application/json"
LUA

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# run NAME URL [wrk args…] → "rps p50_ms p99_ms"
run_wrk() {
  local out; out="$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@")"
  echo "$out" >&2
  local rps p50 p99
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"; p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else printf "%.3f", (v+0)*1000 }'; }
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

"$SERVER_BIN" serve --host 127.0.0.1 --port "$swift_port" --data-dir "$work/data" --echo --no-access-log --log-level warning >/dev/null &
pids+=($!)
wait_port "$swift_port"
curl -sf "http://127.0.0.1:$swift_port/healthz" >/dev/null
echo "== pfc-server (Swift) ==" >&2
wrk -t2 -c16 -d2s "http://127.0.0.1:$swift_port/healthz" >/dev/null  # warm-up
read -r s_h_rps s_h_p50 s_h_p99 < <(run_wrk "http://127.0.0.1:$swift_port/healthz")
read -r s_e_rps s_e_p50 s_e_p99 < <(run_wrk -s "$work/post.lua" "http://127.0.0.1:$swift_port/echo")
kill -TERM "${pids[0]}"; wait "${pids[0]}" || { echo "pfc-server did not exit 0 on SIGTERM" >&2; exit 1; }
pids=()

if [[ "$with_peer" != 0 ]]; then
  (cd "$here" && exec "$peer_python" -m uvicorn fastapi_peer:app --host 127.0.0.1 --port "$peer_port" --workers 2 --no-access-log --log-level warning) &
  pids+=($!)
  wait_port "$peer_port"; sleep 1
  loop="$("$peer_python" -c 'import importlib.util as u; print("uvloop" if u.find_spec("uvloop") else "asyncio", "httptools" if u.find_spec("httptools") else "h11")')"
  echo "== FastAPI + uvicorn (2 workers, $loop) ==" >&2
  wrk -t2 -c16 -d2s "http://127.0.0.1:$peer_port/healthz" >/dev/null
  read -r p_h_rps p_h_p50 p_h_p99 < <(run_wrk "http://127.0.0.1:$peer_port/healthz")
  read -r p_e_rps p_e_p50 p_e_p99 < <(run_wrk -s "$work/post.lua" "http://127.0.0.1:$peer_port/echo")
  kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
  pids=()
fi

# HTTP beside HTTPS: GET /healthz on the same binary, access log on (the default, info level, to a
# file), one server at a time so neither shares the cores with the other.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" \
  -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
# bench_healthz SCHEME [serve flags…]: writes "rps p50_ms p99_ms" to $work/SCHEME.txt
bench_healthz() {
  local scheme="$1"; shift
  "$SERVER_BIN" serve --host 127.0.0.1 --port "$tls_port" --data-dir "$work/data" "$@" >/dev/null 2>>"$work/server-$scheme.log" &
  pids+=($!)
  wait_port "$tls_port"
  curl -sf --cacert "$work/cert.pem" --resolve "localhost:$tls_port:127.0.0.1" "$scheme://localhost:$tls_port/healthz" >/dev/null \
    || { echo "GET $scheme://localhost:$tls_port/healthz failed; server log:" >&2; tail -5 "$work/server-$scheme.log" >&2; exit 1; }
  echo "== pfc-server $scheme, access log on ==" >&2
  wrk -t2 -c16 -d2s "$scheme://127.0.0.1:$tls_port/healthz" >/dev/null
  run_wrk "$scheme://127.0.0.1:$tls_port/healthz" > "$work/$scheme.txt"
  kill -TERM "${pids[0]}"; wait "${pids[0]}" || { echo "pfc-server ($scheme) did not exit 0 on SIGTERM" >&2; exit 1; }
  pids=()
}
bench_healthz http
bench_healthz https --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
read -r h_rps h_p50 h_p99 < "$work/http.txt"
read -r t_rps t_p50 t_p99 < "$work/https.txt"
access_lines="$(cat "$work"/server-http*.log | grep -c 'GET /healthz 200' || true)"

printf '\nwrk -t%s -c%s -d%s, %s cores; peer: FastAPI + uvicorn --workers 2 (%s)\n' "$threads" "$conns" "$duration" "$(nproc)" "${loop:-skipped}"
printf '%-14s %-13s %12s %10s %10s\n' route server "requests/s" "p50 ms" "p99 ms"
printf '%-14s %-13s %12s %10s %10s\n' "GET /healthz" swift "$s_h_rps" "$s_h_p50" "$s_h_p99"
[[ "$with_peer" != 0 ]] && printf '%-14s %-13s %12s %10s %10s\n' "GET /healthz" fastapi "$p_h_rps" "$p_h_p50" "$p_h_p99"
printf '%-14s %-13s %12s %10s %10s\n' "POST /echo" swift "$s_e_rps" "$s_e_p50" "$s_e_p99"
[[ "$with_peer" != 0 ]] && printf '%-14s %-13s %12s %10s %10s\n' "POST /echo" fastapi "$p_e_rps" "$p_e_p50" "$p_e_p99"
printf '%-14s %-13s %12s %10s %10s\n' "GET /healthz" "swift http+log" "$h_rps" "$h_p50" "$h_p99"
printf '%-14s %-13s %12s %10s %10s\n' "GET /healthz" "swift https+log" "$t_rps" "$t_p50" "$t_p99"
if [[ "$with_peer" != 0 ]]; then
  awk -v a="$s_h_rps" -v b="$p_h_rps" -v c="$s_e_rps" -v d="$p_e_rps" \
    'BEGIN { printf "ratio (swift / fastapi): healthz %.1fx, echo %.1fx (goal >= 20x)\n", a/b, c/d }'
fi
awk -v a="$t_rps" -v b="$h_rps" 'BEGIN { printf "ratio (https / http, access log on, keep-alive): healthz %.2fx\n", a/b }'
echo "access-log lines written by the two servers: $access_lines"
