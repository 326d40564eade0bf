#!/usr/bin/env bash
# Continual-learning experiments on the committed 8×8 digits fixture (research/pfc.md §3.1, §3.2, §4):
# split digits (class-incremental), sorted-label digits, and unlearning by column forgetting.
#   Benchmarks/continual/run.sh [--experiment split|sorted|unlearn|all] [--threads 2] [--seed 0] [--key value …]
# Every option of Benchmarks/ContinualBench/main.swift can be passed through (e.g. --split-lr 3e-3).
# Unlearning runs seeds 0-3 over a grid w {5,10} × lr {1e-3,2e-3,4e-3} (s 2.5), picks the pair on validation and
# reports the test gap mean ± sd over the seeds (about 8 min on one busy core: --experiment unlearn --threads 1).
# Prints markdown tables on stdout and per-task progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product pfc-continual >&2
bin="$(swift build -c release --show-bin-path)/pfc-continual"
echo "command: Benchmarks/continual/run.sh $*"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
start=$(date +%s)
"$bin" --data-dir Tests/PFCTests/Fixtures "$@"
echo
echo "wall time: $(( $(date +%s) - start )) s"
