#!/usr/bin/env bash
# PFC block training throughput: the Swift engine against a PyTorch (CPU) peer, same data, same
# initial weights, same algorithm (research/pfc.md §1.2–1.3), same thread count, in one run.
#   Benchmarks/pfc/run.sh [--steps 20] [--threads 2]
# Shape: d = 784, K = 300, N = 100, B = 200 (MNIST). Needs: pip install torch numpy.
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=20; threads=2
while [ $# -gt 0 ]; do case "$1" in --steps) steps=$2; shift 2;; --threads) threads=$2; shift 2;; *) echo "unknown $1"; exit 2;; esac; done
python3 -c 'import torch, numpy' 2>/dev/null || { echo "PyTorch is missing: pip install torch numpy" >&2; exit 2; }
swift build -c release --product pfc-bench >&2
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
.build/release/pfc-bench --out-dir "$dir" --steps "$steps" --threads "$threads" > "$dir/swift.json"
python3 Benchmarks/pfc/peer_torch.py --data-dir "$dir" --steps "$steps" --threads "$threads" --form official > "$dir/torch.json"
python3 Benchmarks/pfc/peer_torch.py --data-dir "$dir" --steps "$steps" --threads "$threads" --form gram > "$dir/torch_gram.json"
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
s, t, g = (json.load(open(f"{d}/{n}.json")) for n in ("swift", "torch", "torch_gram"))
print(f"PFC block d=784 K=300 N=100 B=200, {s['threads']} threads, {len(s['losses'])} steps (first is warm-up)")
print(f"  swift engine         {s['examples_per_second']:9.1f} examples/s  {s['gflops']:6.1f} GFLOPS = {100*s['fraction_of_peak']:.0f}% of sgemm peak ({s['sgemm_peak_gflops']:.0f} GFLOPS)")
print(f"  pytorch (official)   {t['examples_per_second']:9.1f} examples/s  torch {t['torch']}")
print(f"  pytorch (gram form)  {g['examples_per_second']:9.1f} examples/s")
print(f"  ratio swift / pytorch official: {s['examples_per_second']/t['examples_per_second']:.2f}x   swift / pytorch gram: {s['examples_per_second']/g['examples_per_second']:.2f}x")
worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(s['losses'], t['losses']))
print(f"  loss: swift {s['losses'][0]:.5f} -> {s['losses'][-1]:.5f}, pytorch {t['losses'][0]:.5f} -> {t['losses'][-1]:.5f}, worst relative gap per step {100*worst:.2f}%")
PY
