#!/usr/bin/env bash
# The offline CLI end to end: `pfc-server train` (a PFC model, and a factorized RNN reading each digit
# row by row) writes a model file whose `evaluate` accuracy matches the one train reported, and bad
# arguments fail with a message, and so does a BLAS pin the CPU cannot run. Usage: scripts/check-cli.sh [path/to/pfc-server]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-.build/debug/pfc-server}"
f=Tests/PFCTests/Fixtures
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "check-cli: $*" >&2; exit 1; }

check() {  # name, minimum test accuracy, train arguments…
    local name=$1 min=$2; shift 2
    "$bin" train --data "$f/digits_train.csv" --test "$f/digits_test.csv" --out "$dir/$name.pfc" --json "$@" \
        > "$dir/$name.json" 2> "$dir/$name.log" || { cat "$dir/$name.log" >&2; fail "$name: train failed"; }
    local reported evaluated
    reported=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["test_accuracy"])' "$dir/$name.json")
    evaluated=$("$bin" evaluate --model "$dir/$name.pfc" --data "$f/digits_test.csv" | sed -E 's/.*accuracy ([0-9.]+).*/\1/')
    python3 - "$reported" "$evaluated" "$min" <<'PY' || fail "$name: test accuracy $reported (evaluate: $evaluated), want ≥ $min and equal"
import sys
r, e, m = map(float, sys.argv[1:])
sys.exit(0 if r >= m and abs(r - e) < 1e-3 else 1)
PY
    echo "check-cli: $name test accuracy $reported (evaluate $evaluated)"
}

check pfc 0.85 --model pfc --basis 64 --iterations 20 --epochs 3 --batch 50 --lr 2e-3
check factorized_rnn 0.75 --model factorized_rnn --sequence-length 8 --basis 32 --iterations 5 --signed --epochs 4 --batch 50 --lr 3e-3

# Bad arguments: a message and a non-zero exit, no model file.
if "$bin" train --data "$f/digits_train.csv" --model rnn --out "$dir/bad.pfc" 2> "$dir/bad.log"; then fail "rnn without --sequence-length was accepted"; fi
grep -q "sequence-length" "$dir/bad.log" || fail "no message naming --sequence-length: $(cat "$dir/bad.log")"
[ ! -e "$dir/bad.pfc" ] || fail "a refused run wrote a model file"
if "$bin" train --data "$f/digits_train.csv" --model pfc --sequence-length 8 --out "$dir/bad.pfc" 2> "$dir/bad.log"; then fail "--sequence-length on pfc was accepted"; fi
# BLAS kernels this CPU lacks (an OPENBLAS_CORETYPE pin for another CPU): serve and train refuse to
# start with a message, before they create anything, instead of dying of an illegal instruction in
# the first dense product. Only a CPU without AVX-512 can show it (every pin runs on one with it).
if ! grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    if OPENBLAS_CORETYPE=SkylakeX timeout 30 "$bin" serve --port 0 --data-dir "$dir/pinned" 2> "$dir/pinned.log"; then
        fail "serve started with OPENBLAS_CORETYPE=SkylakeX on a CPU without AVX-512"
    fi
    grep -q "OPENBLAS_CORETYPE=SkylakeX selects OpenBLAS's SkylakeX kernels, which need AVX-512" "$dir/pinned.log" \
        || fail "no message naming the pin: $(cat "$dir/pinned.log")"
    [ ! -e "$dir/pinned" ] || fail "a refused serve created its data directory"
    if OPENBLAS_CORETYPE=SkylakeX timeout 30 "$bin" train --data "$f/digits_train.csv" --out "$dir/pinned.pfc" 2> "$dir/pinned.log"; then
        fail "train ran with OPENBLAS_CORETYPE=SkylakeX on a CPU without AVX-512"
    fi
    [ ! -e "$dir/pinned.pfc" ] || fail "a refused train wrote a model file"
    echo "check-cli: OPENBLAS_CORETYPE=SkylakeX refused on this CPU without AVX-512"
else
    echo "check-cli: the AVX-512 pin check needs a CPU without AVX-512 (skipped here)"
fi
echo "check-cli: ok"
