"""Would grouping examples into dense blocks beat the active-set split? (issue 14)

Runs the PFC inference (research/pfc.md §1.2, float32 like the engine) on the first 200 examples that
`pfc-bench --out-dir DIR` wrote (x.f32, y.f32 and the weights it measured from, e.g. after
`--pretrain-steps 300`), and costs one iteration's product S·A per chunk of 100 rows, S being the union of
the active sets 𝒜_t ∪ 𝒜_{t−1} (as `ActiveSetProduct` does): the engine's split (columns active in more than
100/ρ rows go to one sgemm panel, the other entries to gathers at ρ = 2.5 times a dense multiply-add)
against the same with each group of g rows (random, or sorted by true label) taking a small dense block
over its union of the remaining columns when that is cheaper (at 1.3× sgemm's cost per multiply-add for
the small block). Prints the cost relative to the dense product, and the ratio union / mean row count (a
block pays off only below g / ρ).

Then a screening check: for the entries inactive after iteration t0, the share that the Cauchy–Schwarz bound
|ΔU_k| ≤ |ΔZ_k| + η·(path length of Z)·‖A_k‖₂ certifies as still inactive h iterations later, i.e. the
outputs of Z·A an exact screened engine could skip (against the share truly still inactive).

    python3 Benchmarks/pfc/active_overlap.py DIR K
"""
import sys

import numpy as np

RHO, SMALL, ROWS, FLOOR = 2.5, 1.3, 100, 1e-5


def inference(dirn, k, dtype, d=784, b=200, n=100, floor=FLOOR):
    """The unrolled inference of §1.2 on the first b examples: per iteration the pre-clamp values U_t and the
    momentum points Z_t (B×K), with the labels, the Gram rows' norms and the step."""
    x = np.fromfile(f"{dirn}/x.f32", dtype=np.float32).reshape(-1, d)[:b].T.astype(dtype)
    y = np.fromfile(f"{dirn}/y.f32", dtype=np.float32)[:b].astype(int)
    wx = np.fromfile(f"{dirn}/wx.f32", dtype=np.float32).reshape(d, k).astype(dtype)
    a = wx.T @ wx
    eta = dtype(1 / np.linalg.eigvalsh(a.astype(np.float64))[-1])
    xmax = x.max(0)[:, None]
    hp = np.full((b, k), floor, dtype)
    hn, m, xtw, pres, zs = hp.copy(), 1.0, x.T @ wx, [], []
    for _ in range(n):
        zs.append(hn.copy())
        pre = hn - eta * (hn @ a - xtw)
        pres.append(pre)
        hc = np.maximum(pre, dtype(floor))
        rm = hc.max(1, keepdims=True)
        hc = hc * np.where(rm > xmax, xmax / rm, dtype(1))
        mn = (1 + (1 + 4 * m * m) ** 0.5) / 2
        hn, m, hp = hc + dtype((m - 1) / mn) * (hc - hp), mn, hc
    return pres, zs, y, np.linalg.norm(a, axis=1), eta


def screening(dirn, k, floor=FLOOR):
    pres, zs, _, norms, eta = inference(dirn, k, np.float64)
    for t0 in (20, 40, 60):
        inactive = pres[t0] < floor
        for h in (1, 5, 10):
            t1 = t0 + h
            path = sum(np.linalg.norm(zs[t + 1] - zs[t], axis=1) for t in range(t0, t1))[:, None]
            bound = np.abs(zs[t1] - zs[t0]) + eta * path * norms[None, :]
            certified = inactive & (floor - pres[t0] > bound)
            still = inactive & (pres[t1] < floor)
            print(f"screening from t={t0 + 1} ({inactive.mean():.3f} inactive), {h} iterations on: certified {certified.sum() / inactive.sum():.3f} "
                  f"of them, truly still inactive {still.sum() / inactive.sum():.3f}")


def split_cost(sup, order, g):
    cnt = sup.sum(0)
    common = RHO * cnt > ROWS
    rest = sup & ~common
    now = ROWS * common.sum() + RHO * rest.sum()
    grouped = ROWS * common.sum()
    ratios = []
    for i in range(0, ROWS, g):
        grp = rest[order[i:i + g]]
        u = grp.any(0).sum()
        grouped += min(len(grp) * u * SMALL, RHO * grp.sum())
        ratios.append(u / max(1e-9, grp.sum(1).mean()))
    return now, grouped, float(np.mean(ratios))


def main():
    dirn, k = sys.argv[1], int(sys.argv[2])
    pres, _, y, _, _ = inference(dirn, k, np.float32)
    acts = [u >= FLOOR for u in pres]
    dense = ROWS * k
    print("active fraction after iteration t: " + ", ".join(f"t={t}: {acts[t - 1].mean():.3f}" for t in (1, 2, 5, 10, 20, 50, 100)))
    for name in ("random", "label"):
        for g in (4, 8, 16):
            now = grouped = 0.0
            ratio = []
            for t in range(1, len(acts)):
                for c0 in (0, ROWS):
                    sup = acts[t][c0:c0 + ROWS] | acts[t - 1][c0:c0 + ROWS]
                    order = np.random.default_rng(t).permutation(ROWS) if name == "random" else np.argsort(y[c0:c0 + ROWS], kind="stable")
                    a, b, r = split_cost(sup, order, g)
                    # the engine runs an iteration dense when its split costs more than 0.8 of the dense product
                    now += a / dense if a < 0.8 * dense else 1.0
                    grouped += b / dense if b < 0.8 * dense else 1.0
                    if t >= 50: ratio.append(r)
            its = 2 * (len(acts) - 1)
            print(f"rows grouped {name:6s} g={g:2d}: S·A over iterations 2..{len(acts)} relative to dense: split {now / its:.3f}, "
                  f"split + group blocks {grouped / its:.3f} (gain {now / grouped:.2f}x); union / mean row (t >= 50) {np.mean(ratio):.2f}, "
                  f"pays off below {g / RHO:.1f}")
    screening(dirn, k)


if __name__ == "__main__":
    main()
