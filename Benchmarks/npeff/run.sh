#!/usr/bin/env bash
# NPEFF acceptance on the digits fixture (issue 7) and D-NPEFF's NMF against scikit-learn, in one run:
#   Benchmarks/npeff/run.sh [--threads 2] [--sklearn-steps 200] [any other pfc-npeff option, e.g. --basis 300 --epochs 15]
# 1. pfc-npeff trains a PFC classifier (K=300, N=100, lr 2e-3, 15 epochs) on Tests/PFCTests/Fixtures/digits_train.csv,
#    computes D-PEFs and LRM-PEFs of all 1438 rows, fits 32 components with D-NPEFF and LRM-NPEFF, perturbs every
#    component (both signs) and prints the KL-ratio / PEF-norm-ratio tables and the top examples of two components.
# 2. It writes the pruned D-PEF matrix and a shared U(0,1) start (W0, H0) and times D-NPEFF's NMF from it; the peer
#    (peer_sklearn.py) runs sklearn NMF(solver="mu", init="custom") from the same start for the same iterations with
#    the same thread count, and the losses of both factorisations are computed by one formula.
# Needs: pip install scikit-learn numpy scipy.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=2; steps=200; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2;;
    --sklearn-steps) steps=$2; shift 2;;
    *) extra+=("$1" "$2"); shift 2;;
  esac
done
python3 -c 'import sklearn, numpy, scipy' 2>/dev/null || { echo "scikit-learn is missing: pip install scikit-learn numpy scipy" >&2; exit 2; }
swift build -c release --product pfc-npeff >&2
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
echo "# Benchmarks/npeff/run.sh --threads $threads --sklearn-steps $steps ${extra[*]:-}"
.build/release/pfc-npeff --threads "$threads" --sklearn-dir "$dir" --sklearn-steps "$steps" ${extra[@]+"${extra[@]}"}
echo
echo "# OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads python3 Benchmarks/npeff/peer_sklearn.py --dir <dir>"
OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
  python3 Benchmarks/npeff/peer_sklearn.py --dir "$dir" > "$dir/sklearn.json"
# The Swift NMF is timed again right after scikit-learn, so both see the same machine load.
.build/release/pfc-npeff --threads "$threads" --nmf-from "$dir" --sklearn-steps "$steps" > "$dir/swift_again.txt"
python3 - "$dir" <<'PY'
import json, re, sys
d = sys.argv[1]
s, k = json.load(open(f"{d}/swift.json")), json.load(open(f"{d}/sklearn.json"))
again = [float(x) for x in re.findall(r'"([0-9.]+)"', open(f"{d}/swift_again.txt").read())]
swift_best = min(s["swift_seconds_all"] + again)
print(f"\nD-NPEFF NMF vs scikit-learn {k['sklearn']} NMF(solver='mu', init='custom', tol=0), {s['threads']} threads")
print(f"  problem: pruned D-PEFs {s['rows']} x {s['cols']}, {s['nnz']} non-zeros, r = {s['components']}, {s['iterations']} iterations, same W0/H0 (U(0,1))")
print(f"  {'':22}{'seconds (best)':>15}{'all runs':>32}{'final loss':>16}")
print(f"  {'pfc-npeff D-NPEFF':22}{swift_best:15.3f}{' '.join(f'{t:.2f}' for t in s['swift_seconds_all'] + again):>32}{k['swift_loss_here']:16.6f}")
print(f"  {'scikit-learn mu':22}{k['seconds']:15.3f}{' '.join(f'{t:.2f}' for t in k['seconds_all']):>32}{k['loss']:16.6f}")
print(f"  initial loss {k['initial_loss']:.4e}; relative loss gap {abs(k['swift_loss_here'] - k['loss']) / k['loss']:.2e}; "
      f"relative gap of the reconstructions WH {k['factor_gap']:.2e}")
ratio = k['seconds'] / swift_best
print(f"  speed-up {ratio:.2f}x  (target >= 3x at equal loss: {'MET' if ratio >= 3 and abs(k['swift_loss_here'] - k['loss']) <= 1e-4 * k['loss'] else 'NOT MET'})")
PY
