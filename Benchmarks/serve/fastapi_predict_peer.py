#!/usr/bin/env python3
"""The predict benchmark's peer: FastAPI + PyTorch (CPU) serving a pfc-server PFC model's forward pass.

    cd Benchmarks/serve && PFC_PEER_WEIGHTS=model.safetensors python3 -m uvicorn fastapi_predict_peer:app --port 8090 --workers 2

Loads the model exported by `GET /v1/models/{id}/versions/{v}/weights?format=safetensors` (tensors `wx`
d×K, `wy` C×K, the architecture in the metadata) and answers `POST /v1/models/{id}/predict` with the same
body and answer shape as pfc-server: the unrolled FISTA of research/pfc.md §1.2 (as
Tests/Integration/safetensors_numpy.py does in NumPy), predictions, outputs and the top-`top` basis
vectors by h_k·W_y[ŷ, k]. Like pfc-server it forms A = W_xᵀW_x and η = 1/λmax(A) once at load.
One torch thread per worker process; uvicorn with 2 workers (the machine's cores).
"""
import json
import os

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from safetensors import safe_open

torch.set_num_threads(1)
FLOOR = 1e-5


def largest_eigenvalue(a, iterations=40, tolerance=1e-5):
    """The power method (Blocks/PowerIteration.swift), from a fixed start vector."""
    g = torch.Generator().manual_seed(0)
    v = 0.5 + torch.rand(a.shape[0], generator=g, dtype=torch.float64)
    v /= v.norm()
    lam = 0.0
    for _ in range(iterations):
        w = a @ v
        nxt = float(v @ w)
        n = w.norm()
        if n == 0:
            return 0.0
        v = w / n
        converged = abs(nxt - lam) <= tolerance * abs(nxt)
        lam = nxt
        if converged:
            break
    return lam


class Model:
    def __init__(self, path):
        with safe_open(path, framework="pt") as f:
            meta = f.metadata()
            self.wx = f.get_tensor("wx").float()   # d×K
            self.wy = f.get_tensor("wy").float()   # C×K
        arch = json.loads(meta["architecture"])
        assert arch["kind"] == "pfc", "the peer serves one-block PFC models"
        self.iterations = int(arch["iterations"])
        self.gram = self.wx.T @ self.wx             # K×K, once
        lam = largest_eigenvalue(self.gram.double())
        self.eta = 1.0 / lam if lam > 0 else 1.0
        m, betas = 1.0, []
        for _ in range(self.iterations):
            nxt = (1 + (1 + 4 * m * m) ** 0.5) / 2
            betas.append((m - 1) / nxt)
            m = nxt
        self.betas = betas

    @torch.inference_mode()
    def forward(self, x):
        """x: B×d → Hᵀ (B×K), outputs B×C."""
        eta = self.eta
        xtw = eta * (x @ self.wx)                   # η XᵀW
        xmax = x.max(dim=1).values
        h_prev = torch.full((x.shape[0], self.wx.shape[1]), FLOOR)
        z = h_prev.clone()
        h = z
        for beta in self.betas:
            u = z + xtw - eta * (z @ self.gram)
            c = torch.clamp(u, min=FLOOR)
            cmax = c.max(dim=1).values
            s = torch.where(cmax > xmax, xmax / cmax, torch.ones_like(cmax))
            h = c * s[:, None]
            z = h + beta * (h - h_prev)
            h_prev = h
        return h, h @ self.wy.T


app = FastAPI()
MODEL = Model(os.environ["PFC_PEER_WEIGHTS"]) if "PFC_PEER_WEIGHTS" in os.environ else None


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.post("/v1/models/{model_id}/predict")
async def predict(model_id: str, request: Request):
    body = await request.json()
    inputs = body.get("inputs")
    top = int(body.get("top", 5))
    if not isinstance(inputs, list) or not inputs or not (1 <= top <= 100):
        return JSONResponse({"error": {"code": "unprocessable", "message": "bad inputs or top"}}, status_code=422)
    x = torch.tensor(inputs, dtype=torch.float32)
    if x.ndim != 2 or x.shape[1] != MODEL.wx.shape[0]:
        return JSONResponse({"error": {"code": "unprocessable", "message": "wrong width"}}, status_code=422)
    h, out = MODEL.forward(x)
    pred = out.argmax(dim=1)
    contrib = h * MODEL.wy[pred]                    # B×K: h_k · W_y[ŷ, k]
    vals, idx = contrib.topk(min(top, contrib.shape[1]), dim=1)
    explanations = [[{"block": 0, "component": int(k), "activation": float(h[b, k]), "contribution": float(v)}
                     for v, k in zip(vals[b].tolist(), idx[b].tolist())] for b in range(x.shape[0])]
    return {"model_version": 1, "predictions": pred.tolist(), "outputs": out.tolist(), "explanations": explanations}
