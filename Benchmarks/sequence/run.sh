#!/usr/bin/env bash
# Sequence-model experiments of issue 8 (research/pfc.md §2.2–2.3, §5.4–5.5), release build:
#   Benchmarks/sequence/run.sh [--experiment all|digits|copy] [--threads 2] [--epochs 60] [pfc-sequence options…]
# Sequential digits (fixture Tests/PFCTests/Fixtures/digits_*.csv, rows as steps: T = 8, d = 8):
# factorized RNN (signed and non-negative W) vs vanilla RNN, with and without BPTT.
# Copy task: the no-backprop factorized RNN (K 512, batch 16, N 40, 600 batches: about 5 min per padding on one core)
# and the BPTT vanilla RNN at paddings 5, 10, 15. The padding-10 target (≥ 0.99) is not reached within that budget.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product pfc-sequence >&2
exec "$(swift build -c release --show-bin-path)/pfc-sequence" --threads 2 --epochs 60 "$@"
