#!/usr/bin/env bash
# The libFuzzer targets of the service's input handling (Fuzz/PFCFuzz, Fuzz/README.md).
#   scripts/fuzz.sh build                       build .build-fuzz/debug/pfc-fuzz (swift build --sanitize=fuzzer)
#   scripts/fuzz.sh run <target> [seconds=60] [libFuzzer flags…]
#                                               fuzz one target; 0 seconds = until stopped or crashed
#   scripts/fuzz.sh all [seconds=60] [libFuzzer flags…]
#                                               every target in turn; a table of runs and coverage
#   scripts/fuzz.sh ci                          the test suite's bounded run: every target for
#                                               FUZZ_CI_SECONDS (default 12) s; ends "fuzz: N targets passed, M failed"
#   scripts/fuzz.sh targets                     the target names
# Each target's working corpus is .build-fuzz/corpus/<target>, seeded from Fuzz/corpus/<target>;
# crashes land in .build-fuzz/crashes/<target>-crash-<sha1> (replay: .build-fuzz/debug/pfc-fuzz
# --target=<target> <file>).
# FUZZ_BINARY=<path> runs that binary instead of building.
set -uo pipefail
cd "$(dirname "$0")/.."
scratch=.build-fuzz
binary=${FUZZ_BINARY:-$scratch/debug/pfc-fuzz}
targets=(csv ndjson dataset-json request query model-file routes)

build() {
    [ -n "${FUZZ_BINARY:-}" ] && return 0  # a binary given (e.g. a copy for a long run while rebuilding): use it as is
    # A scratch path of its own: the instrumented build never disturbs .build (the suite's).
    swift build --scratch-path "$scratch" --sanitize=fuzzer -Xswiftc -DPFC_FUZZING --product pfc-fuzz 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' | tail -20
    [ "${PIPESTATUS[0]}" -eq 0 ] && [ -x "$binary" ]
}

max_len() { case "$1" in model-file) echo 8192 ;; query) echo 1024 ;; *) echo 4096 ;; esac; }

# run <target> <seconds> [flags…]: one libFuzzer run; its log is $scratch/logs/<target>.log.
run() {
    local target=$1 seconds=$2; shift 2
    [ -d "Fuzz/corpus/$target" ] || { echo "unknown target $target (one of: ${targets[*]})" >&2; return 2; }
    mkdir -p "$scratch/corpus/$target" "$scratch/crashes" "$scratch/logs"
    local log=$scratch/logs/$target.log
    # -timeout: a single input taking 10 s is a finding (a hang), not something to wait for.
    # SWIFT_BACKTRACE: Swift's own crash handler would take the signal before libFuzzer saves the input.
    SWIFT_BACKTRACE=enable=no "$binary" --target="$target" "$scratch/corpus/$target" "Fuzz/corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$target")" \
        -print_final_stats=1 -artifact_prefix="$scratch/crashes/$target-" "$@" > "$log" 2>&1
    local rc=$?
    local runs cov ft
    runs=$(grep -Eo '^Done [0-9]+ runs' "$log" | tail -1 | grep -Eo '[0-9]+'); runs=${runs:-$(grep -Eo '^stat::number_of_executed_units: [0-9]+' "$log" | grep -Eo '[0-9]+$')}
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+'); ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+')
    printf '%-13s rc=%-3s runs=%-9s cov=%-6s ft=%-6s corpus=%s\n' "$target" "$rc" "${runs:-0}" "${cov:-?}" "${ft:-?}" \
        "$(find "$scratch/corpus/$target" -type f | wc -l)"
    local five=$(grep -ac '^FUZZ-500' "$log")
    [ "$five" -gt 0 ] && { echo "  $five distinct 500 answer(s) (not crashes; inputs in $scratch/500s/):"; grep -a '^FUZZ-500' "$log" | head -5 | cut -c1-240; }
    if [ "$rc" -ne 0 ]; then
        grep -aE 'Fatal error|Precondition failed|ERROR: libFuzzer|Test unit written|^Base64|out-of-memory|timeout after' "$log" | head -8 | cut -c1-400
    fi
    return "$rc"
}

command=${1:-}; shift || true
case "$command" in
    build) build ;;
    targets) printf '%s\n' "${targets[@]}" ;;
    run)
        target=${1:?target}; seconds=${2:-60}; shift 2 2>/dev/null || shift $#
        build || exit 1
        run "$target" "$seconds" "$@" ;;
    all)
        seconds=${1:-60}; shift || true
        build || exit 1
        failed=0
        for t in "${targets[@]}"; do run "$t" "$seconds" "$@" || failed=$((failed + 1)); done
        [ "$failed" -eq 0 ] ;;
    ci)
        start=$SECONDS
        if ! build; then echo "fuzz: 0 targets passed, ${#targets[@]} failed (build)"; exit 1; fi
        echo "fuzz build: $((SECONDS - start)) s"
        passed=0; failed=0
        for t in "${targets[@]}"; do
            if run "$t" "${FUZZ_CI_SECONDS:-12}"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        done
        echo "fuzz: $passed targets passed, $failed failed ($((SECONDS - start)) s)"
        [ "$failed" -eq 0 ] ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
