#!/usr/bin/env bash
# The test suite proper; run it through scripts/test.sh (which installs what is missing and starts
# PostgreSQL). Stages: `swift test` (unit, end-to-end over sockets, both stores), two server
# processes sharing one PostgreSQL (Tests/Integration/replicas.py), job events across them
# (Tests/Integration/events_replicas.py), the offline CLI, the deploy-file checks,
# schemathesis against a running server, and a bounded run of every libFuzzer target (scripts/fuzz.sh ci).
# Ends with one tally line: "tests: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0
stage() { if [ "$1" -eq 0 ]; then passed=$((passed + $2)); else failed=$((failed + ${3:-1})); fi; }
mkdir -p .build

# Tallies one `swift test` run from its log: its test count, less the tests that recorded issues.
tally() {
    local rc=$1 log=$2 count issues
    count=$(grep -Eo 'Test run with [0-9]+ tests' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
    issues=$(grep -Eo 'failed after [0-9.]+ seconds with [0-9]+ issue' "$log" | tail -1 | grep -Eo '[0-9]+ issue' | grep -Eo '[0-9]+' || echo 1)
    if [ "$rc" -eq 0 ]; then passed=$((passed + count)); else failed=$((failed + ${issues:-1})); passed=$((passed + count - ${issues:-1})); fi
}

# Two tests run alone afterwards: the PostgreSQL restart test stops the server every other suite is
# using, and the bounded-memory blob test measures the whole process's resident memory, which the
# suites running beside it (training, analyses, large predictions) would add to.
alone='postgresPoolRecoversAfterServerRestart|hundredMebibyteBlobRoundTripsInBoundedMemory'
echo "== swift test"
swift test --skip "$alone" "$@" 2>&1 | tee .build/swift-test.log
tally "${PIPESTATUS[0]}" .build/swift-test.log
for t in ${alone//|/ }; do
    echo "== swift test: $t, alone"
    swift test --skip-build --filter "$t" 2>&1 | tee ".build/swift-test-$t.log"
    tally "${PIPESTATUS[0]}" ".build/swift-test-$t.log"
done

echo "== two replicas on one PostgreSQL"
swift build --product pfc-server 2>&1 | tail -1
python3 Tests/Integration/replicas.py .build/debug/pfc-server; stage $? 2 2

echo "== resume from a checkpoint on another replica (SIGKILL in epoch 7 of 10)"
python3 Tests/Integration/resume.py .build/debug/pfc-server; stage $? 5 5

echo "== job events across two replicas (LISTEN/NOTIFY)"
python3 Tests/Integration/events_replicas.py .build/debug/pfc-server; stage $? 6 6

echo "== SIGTERM during compute (and the running job released to the queue)"
python3 Tests/Integration/shutdown.py .build/debug/pfc-server; stage $? 2 2

echo "== safetensors export read by NumPy, and imported back"
python3 Tests/Integration/safetensors_numpy.py .build/debug/pfc-server; stage $? 1

echo "== the web dashboard in headless Chromium (every page, keyboard, console, origin, screenshots in .build/dashboard-screenshots)"
SE_AVOID_STATS=true SE_OFFLINE=true python3 Tests/Integration/dashboard.py .build/debug/pfc-server; stage $? 1

echo "== the offline CLI (train, evaluate)"
scripts/check-cli.sh .build/debug/pfc-server; stage $? 1

echo "== deploy files and openapi.yaml"
scripts/check-deploy.sh; stage $? 1

echo "== schemathesis against a running server"
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.build/debug/pfc-server serve --port "$port" --data-dir "$dir" --no-access-log > "$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null && break
    sleep 0.2
done
scripts/schemathesis.sh "http://127.0.0.1:$port" "$(cat "$dir/default-api-key")"; rc=$?
kill -TERM "$server"; wait "$server"; stage $rc 1
[ $rc -eq 0 ] || tail -50 "$dir/server.log"
rm -rf "$dir"

echo "== libFuzzer targets, CI-sized (scripts/fuzz.sh ci: every target for FUZZ_CI_SECONDS s; Fuzz/README.md)"
scripts/fuzz.sh ci 2>&1 | tee .build/fuzz-ci.log
rc=${PIPESTATUS[0]}
line=$(grep -Eo 'fuzz: [0-9]+ targets passed, [0-9]+ failed' .build/fuzz-ci.log | tail -1)
fuzz_passed=$(echo "$line" | grep -Eo '[0-9]+ targets' | grep -Eo '[0-9]+'); fuzz_failed=$(echo "$line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')
stage 0 "${fuzz_passed:-0}"  # the targets that ran clean count even when another crashed
[ "$rc" -eq 0 ] || stage 1 0 "$(( ${fuzz_failed:-0} > 0 ? fuzz_failed : 1 ))"

echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
