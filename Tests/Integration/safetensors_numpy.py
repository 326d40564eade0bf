#!/usr/bin/env python3
"""A model trained by pfc-server, exported as safetensors, opens with the `safetensors` package and NumPy,
and a NumPy reference of the PFC forward pass (research/pfc.md §1.2, a few lines of FISTA) reproduces the
service's predictions to 1e-5; imported back, the model predicts identically (issue 16).

    python3 Tests/Integration/safetensors_numpy.py .build/debug/pfc-server
Installs `safetensors` and `numpy` from PyPI when they are missing. Prints 'N passed, M failed'.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/debug/pfc-server")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def ensure(*packages):
    missing = []
    for p in packages:
        try:
            __import__(p)
        except ImportError:
            missing.append(p)
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *missing]
        if subprocess.call(cmd) != 0:
            subprocess.check_call(cmd + ["--break-system-packages"])


ensure("numpy", "safetensors")
import numpy as np  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load as st_load  # noqa: E402

MASK64 = (1 << 64) - 1


class Xoshiro:
    """Linalg/SeededRandom.swift: xoshiro256** seeded through SplitMix64, uniform() with 24 bits."""

    def __init__(self, seed):
        sm = seed
        s = []
        for _ in range(4):
            sm = (sm + 0x9E3779B97F4A7C15) & MASK64
            z = sm
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            s.append(z ^ (z >> 31))
        self.s = s

    def next(self):
        s0, s1, s2, s3 = self.s
        r = (((s1 * 5) & MASK64) << 7 | ((s1 * 5) & MASK64) >> 57) & MASK64
        r = (r * 9) & MASK64
        t = (s1 << 17) & MASK64
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = ((s3 << 45) | (s3 >> 19)) & MASK64
        self.s = [s0, s1, s2, s3]
        return r

    def uniform(self):
        return np.float32(self.next() >> 40) * np.float32(1.0 / 16777216.0)


def largest_eigenvalue(a, iterations=40, tolerance=1e-5):
    """Blocks/PowerIteration.swift: the power method from the same fixed start vector."""
    rng = Xoshiro(0x5EEDF157A)
    v = np.array([np.float32(0.5) + rng.uniform() for _ in range(a.shape[0])], dtype=np.float64)
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(iterations):
        w = a @ v
        nxt = float(v @ w)
        n = np.linalg.norm(w)
        if n == 0:
            return 0.0
        v = w / n
        converged = abs(nxt - lam) <= tolerance * abs(nxt)
        lam = nxt
        if converged:
            break
    return lam


def pfc_forward(wx, wy, x, iterations, floor=1e-5):
    """research/pfc.md §1.2 on Hᵀ (B×K): projected gradient with FISTA momentum, h ≥ floor, max(h) ≤ max(x)."""
    wx, wy, x = wx.astype(np.float64), wy.astype(np.float64), x.astype(np.float64)  # x: d×B
    a = wx.T @ wx
    lam = largest_eigenvalue(a)
    eta = 1 / lam if lam > 0 else 1.0
    xtw = x.T @ wx
    xmax = x.max(axis=0)
    h_prev = np.full((x.shape[1], wx.shape[1]), floor)
    z = h_prev.copy()
    m = 1.0
    h = z
    for _ in range(iterations):
        u = z - eta * (z @ a - xtw)
        c = np.maximum(u, floor)
        cmax = c.max(axis=1)
        s = np.where(cmax > xmax, xmax / np.where(cmax > 0, cmax, 1), 1.0)
        h = c * s[:, None]
        m_next = (1 + np.sqrt(1 + 4 * m * m)) / 2
        z = h + ((m - 1) / m_next) * (h - h_prev)
        h_prev, m = h, m_next
    return wy @ h.T  # C×B


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    port, data = free_port(), tempfile.mkdtemp(prefix="pfc-safetensors-")
    log = open(os.path.join(data, "log.txt"), "w+")
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--data-dir", data, "--no-access-log"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    passed = failed = 0

    def call(method, path, body=None, content_type="application/json", raw=False, headers=()):
        data_ = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data_, method=method)
        req.add_header("Authorization", f"Bearer {key}")
        if data_ is not None:
            req.add_header("Content-Type", content_type)
        for k, v in headers:
            req.add_header(k, v)
        with urllib.request.urlopen(req, timeout=120) as r:
            payload = r.read()
            return payload if raw else json.loads(payload or b"null")

    def check(ok, what):
        nonlocal passed, failed
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        passed, failed = passed + bool(ok), failed + (not ok)

    try:
        key = None
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        key = open(os.path.join(data, "default-api-key")).read().strip()
        csv = open(os.path.join(ROOT, "Tests", "PFCTests", "Fixtures", "digits_train.csv"), "rb").read()
        ds = call("POST", "/v1/datasets?name=digits", csv, "text/csv")
        model = call("POST", "/v1/models", {"name": "np", "kind": "pfc", "input_dim": 64, "output_dim": 10, "basis": 40, "iterations": 30})
        job = call("POST", f"/v1/models/{model['id']}/train", {"dataset_id": ds["id"], "epochs": 3, "learning_rate": 0.003})
        while True:
            j = call("GET", f"/v1/jobs/{job['id']}")
            if j["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
        check(j["state"] == "succeeded", f"training job {j['state']} {j.get('error') or ''}")

        blob = call("GET", f"/v1/models/{model['id']}/versions/1/weights", raw=True, headers=[("Accept", "application/x-safetensors")])
        path = os.path.join(data, "model.safetensors")
        open(path, "wb").write(blob)
        tensors = st_load(blob)
        with safe_open(path, framework="np") as f:
            meta = f.metadata()
        arch = json.loads(meta["architecture"])
        check(meta.get("format") == "pfc-server" and arch["kind"] == "pfc" and arch["basis"] == 40, f"metadata {meta.get('format')} {arch}")
        wx, wy = tensors["wx"], tensors["wy"]
        check(wx.dtype == np.float32 and wx.shape == (64, 40) and wy.shape == (10, 40), f"tensor shapes {wx.shape} {wy.shape}")
        check(bool((wx >= 1e-5 - 1e-12).all()) and meta.get("nonnegative") == "wx,wy", "non-negative factors, flagged in the metadata")

        rows = [[float(v) for v in line.split(",")[1:]] for line in csv.decode().strip().split("\n")[1:41]]
        served = call("POST", f"/v1/models/{model['id']}/predict", {"inputs": rows, "top": 1})
        out = np.array(served["outputs"], dtype=np.float64)            # B×C
        reference = pfc_forward(wx, wy, np.array(rows).T, arch["iterations"]).T
        rel = float(np.abs(out - reference).max() / np.abs(reference).max())
        check(rel <= 1e-5, f"NumPy FISTA matches the service's outputs: max relative difference {rel:.2e} (bound 1e-5)")
        check(list(np.argmax(reference, axis=1)) == served["predictions"], "same predicted classes")

        imported = call("POST", "/v1/models/import?name=back", blob, "application/x-safetensors")
        again = call("POST", f"/v1/models/{imported['id']}/predict", {"inputs": rows, "top": 1})
        check(again["outputs"] == served["outputs"] and again["predictions"] == served["predictions"],
              "the imported model predicts identically")
        back = call("GET", f"/v1/models/{imported['id']}/versions/1/weights?format=safetensors", raw=True)
        check(back == blob, "export → import → export is bit-exact")
    except Exception as e:  # a crash of the test is a failure, reported with the server log
        check(False, f"exception: {e!r}")
        log.seek(0)
        print(log.read()[-3000:])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
