#!/usr/bin/env python3
"""PyTorch (CPU) peer of the PFC block benchmark: the official code's algorithm, same data and init.

Reads the synthetic data and initial weights written by `pfc-bench`, trains one PFC block with
autograd through the unrolled FISTA inference (research/pfc.md §1.2, as in bkvogel/pfc
`fista_right_update`) and the official custom RMSprop (§1.3), and prints one JSON line.

--form official: G = (Hᵀ W_xᵀ − Xᵀ) W_x per iteration, as the official code computes it.
--form gram:     G = Hᵀ (W_xᵀ W_x) − Xᵀ W_x, the Gram form the Swift engine uses.
"""
import argparse
import json
import time

import numpy as np
import torch


def power_method(a, iters=40, tol=1e-5):
    v = torch.rand(a.shape[0], 1)
    v = v / v.norm()
    lam = torch.tensor(0.0)
    for _ in range(iters):
        w = a @ v
        nxt = (v * w).sum()
        v = w / w.norm()
        if abs(nxt - lam) <= tol * abs(nxt):
            lam = nxt
            break
        lam = nxt
    return lam


def fista(x, wx, n_iter, form, floor=1e-5):
    # x: d×B, wx: d×K. Works on Hᵀ (B×K) like the official code.
    b, k = x.shape[1], wx.shape[1]
    with torch.no_grad():
        lr = 1.0 / power_method(wx.t() @ wx)
        x_max = x.max(dim=0).values.unsqueeze(1)  # B×1
    h_prev = torch.full((b, k), floor)
    h_next = h_prev
    m = 1.0
    xt = x.t()
    if form == "gram":
        gram = wx.t() @ wx
        xtw = xt @ wx
    for _ in range(n_iter):
        if form == "gram":
            g = h_next @ gram - xtw
        else:
            g = (h_next @ wx.t() - xt) @ wx
        h_cur = torch.clamp_min(h_next - lr * g, floor)
        with torch.no_grad():
            row_max = h_cur.max(dim=1, keepdim=True).values
            s = torch.where(row_max > x_max, x_max / row_max, torch.ones_like(row_max))
        h_cur = h_cur * s
        m_next = (1 + (1 + 4 * m * m) ** 0.5) / 2
        h_next = h_cur + ((m - 1) / m_next) * (h_cur - h_prev)
        m = m_next
        h_prev = h_cur
    return h_cur


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="/tmp/pfc-bench")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--basis", type=int, default=300)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--form", choices=["official", "gram"], default="official")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, k, c = 784, a.basis, 10
    x = torch.from_numpy(np.fromfile(f"{a.data_dir}/x.f32", dtype=np.float32).reshape(-1, d))
    y = torch.from_numpy(np.fromfile(f"{a.data_dir}/y.f32", dtype=np.float32).astype(np.int64))
    wx = torch.from_numpy(np.fromfile(f"{a.data_dir}/wx.f32", dtype=np.float32).reshape(d, k)).requires_grad_()
    wy = torch.from_numpy(np.fromfile(f"{a.data_dir}/wy.f32", dtype=np.float32).reshape(c, k)).requires_grad_()
    params = [wx, wy]
    ms = [torch.zeros_like(p) for p in params]
    alpha, eps, wd = 0.99, 1e-8, 1e-4
    losses, timed = [], 0.0
    for step in range(a.steps):
        xb = x[step * a.batch:(step + 1) * a.batch].t().contiguous()
        yb = torch.nn.functional.one_hot(y[step * a.batch:(step + 1) * a.batch], c).t().float()
        t0 = time.perf_counter()
        h = fista(xb, wx, a.iterations, a.form)
        y_hat = wy @ h.t()
        loss = torch.nn.functional.mse_loss(y_hat, yb)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():  # RMSpropOptimizerCustom, then clip_weights_nonnegative
            for p, s in zip(params, ms):
                s.mul_(alpha).addcmul_(p.grad, p.grad, value=1 - alpha)
                p.sub_(a.lr * p.grad / (s.sqrt() + eps))
                p.sub_(wd * p)
                p.clamp_(min=1e-5)
        if step > 0:
            timed += time.perf_counter() - t0
        losses.append(loss.item())
    print(json.dumps({"examples_per_second": (a.steps - 1) * a.batch / timed, "losses": losses,
                      "threads": a.threads, "form": a.form, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
