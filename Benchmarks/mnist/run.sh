#!/usr/bin/env bash
# The paper's MNIST experiments through the REST API only (issue 17; protocols in research/pfc.md §1.3, §5):
#   Benchmarks/mnist/run.sh [--experiment small|mlp|seq|all]... [--epochs N] [--sizes 300 2000] [--seed 0]
# Builds a release pfc-server, starts it on SQLite in a temporary directory, uploads ../shared/data/mnist/
# (pixels / 255) and prints a markdown table: test accuracy on the official 10,000 test digits, the paper's
# figure, the protocol and the wall time on this machine. Raw output goes to Benchmarks/mnist/results-*.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --scratch-path .build-release --product pfc-server >&2
bin="$(swift build -c release --scratch-path .build-release --show-bin-path)/pfc-server"
echo "command: Benchmarks/mnist/run.sh $*"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $(nproc) cores, $(date -u +%Y-%m-%d)"
start=$(date +%s)
python3 Benchmarks/mnist/mnist.py --server "$bin" --out Benchmarks/mnist "$@"
echo
echo "wall time: $(( $(date +%s) - start )) s"
