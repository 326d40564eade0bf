#!/usr/bin/env python3
"""scikit-learn peer of D-NPEFF's NMF (Benchmarks/npeff/run.sh).

Reads the pruned D-PEF matrix and the initial factors that pfc-npeff wrote (--sklearn-dir), runs
sklearn.decomposition.NMF(solver="mu", beta_loss="frobenius", init="custom") from the same W0/H0 for the same
number of iterations (tol=0, so no early stop), and prints one JSON object: time (best of --repeats), final loss
‖A − WH‖_F² of sklearn's factors and of the Swift factors, computed here by the same float64 formula.
Thread count: set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before starting (run.sh does).
"""
import argparse
import json
import time

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.decomposition import NMF


def loss(a, w, h):
    """‖A − WH‖_F² = ‖A‖² − 2⟨W, A Hᵀ⟩ + ⟨WᵀW, H Hᵀ⟩, in float64."""
    a64 = a.astype(np.float64)
    w64, h64 = w.astype(np.float64), h.astype(np.float64)
    return float(a64.multiply(a64).sum() - 2 * np.sum(w64 * (a64 @ h64.T)) + np.sum((w64.T @ w64) * (h64 @ h64.T)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    d = args.dir
    meta = json.load(open(f"{d}/swift.json"))
    n, m, r, iters = meta["rows"], meta["cols"], meta["components"], meta["iterations"]
    indptr = np.fromfile(f"{d}/indptr.i64", dtype=np.int64)
    indices = np.fromfile(f"{d}/indices.i32", dtype=np.int32)
    data = np.fromfile(f"{d}/data.f32", dtype=np.float32)
    a = sp.csr_matrix((data, indices, indptr), shape=(n, m))
    w0 = np.fromfile(f"{d}/w0.f32", dtype=np.float32).reshape(n, r)
    h0 = np.fromfile(f"{d}/h0.f32", dtype=np.float32).reshape(r, m)

    times, w, h = [], None, None
    for _ in range(args.repeats):
        model = NMF(n_components=r, init="custom", solver="mu", beta_loss="frobenius", max_iter=iters, tol=0.0)
        t = time.perf_counter()
        w = model.fit_transform(a, W=w0.copy(), H=h0.copy())
        times.append(time.perf_counter() - t)
        h = model.components_
    ws = np.fromfile(f"{d}/w_swift.f32", dtype=np.float32).reshape(n, r)
    hs = np.fromfile(f"{d}/h_swift.f32", dtype=np.float32).reshape(r, m)
    print(json.dumps({
        "sklearn": sklearn.__version__, "numpy": np.__version__, "dtype": str(w.dtype), "n_iter": int(model.n_iter_),
        "seconds": min(times), "seconds_all": times, "loss": loss(a, w, h), "swift_loss_here": loss(a, ws, hs),
        "initial_loss": loss(a, w0, h0),
        "factor_gap": float(np.linalg.norm(ws @ hs - w @ h) / max(np.linalg.norm(w @ h), 1e-30)),
    }))


if __name__ == "__main__":
    main()
