#!/usr/bin/env bash
# Sequence-model experiments of issue 8 (research/pfc.md §2.2–2.3, §5.4–5.5), release build:
#   Benchmarks/sequence/run.sh [--experiment all|digits|copy] [--threads 2] [--epochs 60] [pfc-sequence options…]
# Sequential digits (fixture Tests/PFCTests/Fixtures/digits_*.csv, rows as steps: T = 8, d = 8):
# factorized RNN (signed and non-negative W) vs vanilla RNN, with and without BPTT.
# Copy task: the no-backprop factorized RNN (K 512, 1024 beyond padding 10; batches of 64, N 40; trained until a held-out check of 256 fresh
# sequences every 50 batches is perfect, at most 3000 batches) and the BPTT vanilla RNN at paddings 5, 10, 15; then
# per-symbol accuracy on 1000 fresh sequences. Padding 10 takes about 8 min on one core, padding 15 (K 1024) 24 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product pfc-sequence >&2
exec "$(swift build -c release --show-bin-path)/pfc-sequence" --threads 2 --epochs 60 "$@"
