#!/usr/bin/env bash
# The paper's MNIST experiments through the REST API only (issue 17; protocols in research/pfc.md §1.3, §3, §4, §5):
#   Benchmarks/mnist/run.sh [--experiment small|mlp|seq|split|split-mlp|split-rmsprop|unlearning|sorted|all]... [--epochs N] [--sizes 300 2000] [--seed 0]
#     mlp:        [--kinds pfc mlp] [--batch 200] [--pfc-lr 3e-4] [--mlp-lr 1e-4] [--optimizer rmsprop] [--patience 20] [--chunk E]
#     seq:        [--seq-rows R] [--seq-batch 200] [--seq-lr 1e-3] [--chunk E] [--chunk-lr-decay F]
#     with --chunk: [--continue-optimizer true] each follow-on job continues the last one's optimizer statistics
#     split:      [--split-k 2000] [--split-epochs 25] [--split-batch 200] [--split-lr 3e-4]
#     split-mlp:  [--split-mlp-h 1357] [--split-mlp-lr 2e-6] (and --split-epochs, --split-batch)
#     split-rmsprop: [--split-rmsprop-k 1357] [--split-rmsprop-lr 1e-5] (and --split-epochs, --split-batch)
#     unlearning: [--unlearn-rows 8000] [--unlearn-reference 1000] [--unlearn-epochs 8] [--unlearn-span 500,800]
#   (defaults are the paper's protocol; `python3 Benchmarks/mnist/mnist.py --help` lists every option)
# Builds a release pfc-server, starts it on SQLite in a temporary directory, uploads ../shared/data/mnist/ as
# .npy (uint8 pixels, scale 1/255 on the server) and prints a markdown table: test accuracy on the official
# 10,000 test digits (POST /v1/models/{id}/evaluate), the paper's figure, the protocol, the epochs, the wall
# time and the load average on this machine; split also prints the service's accuracy matrix R and BWT.
# Raw output: one JSON line per job appended to Benchmarks/mnist/results.jsonl (`table.py` renders it).
# The 2026-12-01b figures were run as (nice -n 19, one server per line, in parallel):
#   mnist.py --experiment mlp --kinds pfc|mlp --sizes 300 --epochs 6 --chunk 2 --batch 50 --pfc-lr 1e-3 --mlp-lr 1e-3
#   mnist.py --experiment split --split-k 300 --split-epochs 1 --split-batch 50 --split-lr 1e-3
#   mnist.py --experiment seq --seq-rows 2000 --epochs 2 --chunk 1 --seq-batch 50 --seq-lr 1e-3
#   mnist.py --experiment unlearning --unlearn-rows 4000 --unlearn-reference 1000 --unlearn-epochs 2
#   mnist.py --experiment split-mlp --split-epochs 1 --split-batch 50 --split-mlp-lr 1e-4
#   mnist.py --experiment seq --kinds mlp --seq-rows 2000 --epochs 3 --seq-batch 25 --seq-lr 3e-4   (vanilla RNN, after lr 1e-3 diverged)
#   mnist.py --experiment seq --kinds mlp --epochs 1 --seq-batch 25 --seq-lr 3e-4   (vanilla RNN, all rows)
# The 2026-12-01c figures (one at a time, nice -n 19):
#   mnist.py --experiment mlp --kinds pfc|mlp --sizes 300 --epochs 60 --chunk 15 --batch 200 --pfc-lr 3e-4 --mlp-lr 1e-4
#   mnist.py --experiment split --split-k 2000 --split-epochs 5 --split-batch 200 --split-lr 3e-4
# The 2026-12-02 figures (nice -n 19; the two 02b runs side by side):
#   mnist.py --experiment seq --kinds pfc --epochs 6 --chunk 2 --seq-batch 100 --seq-lr 3e-4
#   mnist.py --experiment seq --kinds pfc --epochs 12 --chunk 4 --chunk-lr-decay 0.5 --seq-batch 100 --seq-lr 3e-4   (02b)
#   mnist.py --experiment mlp --kinds pfc --sizes 300 --nonnegative false --epochs 40 --chunk 10                      (02b)
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
